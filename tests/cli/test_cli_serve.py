"""``sessiond serve`` and the client commands share one environment.

The client's ``SESSIOND_TARGET``, ``SESSIOND_TOKEN``... must not disturb the
server's settings (which read ``SESSIOND_*`` too, and forbid unknown fields),
and the client commands reach a server started as its own process.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

SESSIOND = Path(sys.executable).with_name("sessiond")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_ignores_client_variables_and_cli_talks_to_it(
    sessiond, cli_env, tmp_path: Path
) -> None:
    port = free_port()
    environment = {
        **cli_env,
        "SESSIOND_LISTEN": f"127.0.0.1:{port}",
        "SESSIOND_STORE": str(tmp_path / "data"),
        "SESSIOND_METRICS_LISTEN": "",
        "SESSIOND_LOG_FORMAT": "text",
        # Client-side variables in the same environment:
        "SESSIOND_TARGET": f"127.0.0.1:{port}",
        "SESSIOND_TOKEN": "not-checked-yet",
        "SESSIOND_TLS": "false",
        "SESSIOND_OUTPUT": "json",
        "SESSIOND_TIMEOUT": "10",
        "SESSIOND_DEBUG": "0",
    }
    log = tmp_path / "serve.log"
    out = await asyncio.to_thread(open, log, "wb")
    with out:
        server = await asyncio.create_subprocess_exec(
            str(SESSIOND),
            "serve",
            "--shutdown-grace-seconds",
            "2",
            env=environment,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        for _ in range(200):
            if server.returncode is not None:
                break
            probe = await sessiond("ls", env=environment)
            if probe.code == 0:
                break
            await asyncio.sleep(0.1)
        assert server.returncode is None, log.read_text()
        assert probe.json() == {"sessions": [], "next_page_token": ""}
        missing = await sessiond("show", "missing", env=environment)
        assert missing.code == 4 and '"SESSION_NOT_FOUND"' in missing.err
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(server.wait(), timeout=20)
    assert code == 0, log.read_text()
