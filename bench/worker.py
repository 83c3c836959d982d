"""A benchmark client process: ``python -m bench.worker sessiond|strands|raw|seed``.

Reads one JSON task per line on stdin (``{"task": name, "params": {...}}``)
and answers one JSON line on stdout (``{"ok": result}`` or ``{"error":
traceback}``), until stdin closes. Async tasks share one event loop for the
worker's life, so gRPC channels and S3 connections stay warm between tasks.
Anything else printed goes to stderr (the worker's log file).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import traceback
from typing import Any


def _tasks(kind: str) -> dict[str, Any]:
    if kind == "sessiond":
        from bench import sessiond_tasks as module
    elif kind == "strands":
        from bench import strands_tasks as module
    elif kind == "raw":
        from bench import raw_tasks as module
    elif kind == "seed":
        from bench import seed as module
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")
    return {
        name.removeprefix("task_"): value
        for name, value in vars(module).items()
        if name.startswith("task_") and callable(value)
    }


async def _serve(kind: str, out: Any) -> None:
    tasks = _tasks(kind)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        request = json.loads(line)
        try:
            function = tasks[request["task"]]
            result = function(**request.get("params", {}))
            if inspect.isawaitable(result):
                result = await result
            answer = {"ok": result}
        except Exception:
            answer = {"error": traceback.format_exc()}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main() -> None:
    """Runs the task loop of the worker kind named on the command line."""
    # The protocol owns the real stdout; stray prints go to the log.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr
    asyncio.run(_serve(sys.argv[1], out))


if __name__ == "__main__":
    main()
