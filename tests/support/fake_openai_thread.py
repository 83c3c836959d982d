"""A fake OpenAI chat-completions endpoint in a thread, for tests that run ``sessiond serve``.

(``tests/engines/fake_models.py`` has the full asyncio fake for in-process
tests; a separate process needs an endpoint that does not depend on the
test's event loop.) It answers ``POST /v1/chat/completions`` with a text
answer — streamed as SSE when asked — or, while :attr:`failing` is set, with
a 401 whose body echoes the ``Authorization`` header it received, as a
careless upstream might::

    with FakeOpenAIThread() as fake:
        ... --openai-base-url fake.url ...
        fake.failing = True
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAIThread:
    """The endpoint; ``url`` is the base URL to configure (``.../v1``)."""

    def __init__(self, answer: str = "the fake model says hi") -> None:
        self.answer = answer
        self.failing = False
        self.authorizations: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                authorization = self.headers.get("Authorization", "")
                fake.authorizations.append(authorization)
                if fake.failing:
                    echo = {
                        "error": {
                            "message": f"Incorrect API key provided: {authorization}",
                            "type": "invalid_request_error",
                            "code": "invalid_api_key",
                        }
                    }
                    self._send(401, "application/json", json.dumps(echo).encode())
                    return
                if body.get("stream"):
                    self._send(200, "text/event-stream", _sse(body["model"], fake.answer))
                else:
                    self._send(200, "application/json", _completion(body["model"], fake.answer))

            def _send(self, status: int, content_type: str, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def _completion(model: str, text: str) -> bytes:
    message = {"role": "assistant", "content": text}
    document = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(),
    }
    return json.dumps(document).encode()


def _sse(model: str, text: str) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        document = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta else [],
            **extra,
        }
        if finish and not delta:
            document["choices"] = [{"index": 0, "delta": {}, "finish_reason": finish}]
        return f"data: {json.dumps(document)}\n\n".encode()

    pieces = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": text}),
        chunk({}, "stop"),
        chunk({}, usage=_usage()),
        b"data: [DONE]\n\n",
    ]
    return b"".join(pieces)
