"""Model engines: adapters from the domain's ``Engine`` protocol to model providers.

- :mod:`~sessiond.server.engines.openai_engine` — any OpenAI-compatible
  chat-completions endpoint, through the ``openai`` package.
- :mod:`~sessiond.server.engines.bedrock_engine` — Amazon Bedrock Converse /
  ConverseStream, through aioboto3.
- :mod:`~sessiond.server.engines.config` — the engines the operator
  configured (flags, environment, engines file) and the registry.

Like ``sessiond.server.storage``, this package sits below the domain's
ports: the domain never imports it (the composition root does).
"""
