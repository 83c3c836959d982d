"""What every client command gets: the resolved options and a connected client."""

from __future__ import annotations

from typing import Any

from sessiond.client.cli import output
from sessiond.client.cli.options import Options
from sessiond.client.sync import Client


class Context:
    """The options of a command, and a client connected on first use.

    Args:
        options: The resolved options.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        self._client: Client | None = None

    @property
    def json(self) -> bool:
        """Whether ``--output json`` was asked for."""
        return self.options.output == "json"

    @property
    def client(self) -> Client:
        """The client (connects on first use)."""
        if self._client is None:
            self._client = Client(self.options.target, **self.options.client_arguments())
        return self._client

    def emit(self, value: Any) -> None:
        """Prints a JSON document (``--output json``)."""
        output.dump(value)

    def close(self) -> None:
        """Closes the client, if one was opened."""
        if self._client is not None:
            self._client.close()
            self._client = None
