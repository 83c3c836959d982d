"""Core figures: S3 requests per Chat turn, and a cold Run start on a long history.

Runs sessiond and strands' S3SessionManager against the same moto server (a
``moto_server`` subprocess) and prints request counts by type and timings.

    .venv/bin/python bench/core_figures.py [--messages 1000] [--turns 50]

sessiond runs in this process here (one server, fresh caches for the cold
start); the full benchmark suite with separate processes is bench/'s job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import botocore.session

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 endpoint in a subprocess."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait()


class Counts:
    """Store requests by operation, reset per measurement."""

    def __init__(self) -> None:
        self.by_op: Counter[str] = Counter()

    def observe(self, op: str, outcome: str) -> None:
        self.by_op[op.upper()] += 1

    def take(self) -> Counter[str]:
        taken, self.by_op = self.by_op, Counter()
        return taken


def summary(samples: list[Counter[str]]) -> dict[str, float]:
    ops = sorted({op for sample in samples for op in sample})
    result = {op: statistics.median(sample[op] for sample in samples) for op in ops}
    result["TOTAL"] = statistics.median(sum(sample.values()) for sample in samples)
    return result


async def sessiond_figures(endpoint: str, bucket: str, turns: int, messages: int) -> dict:
    from sessiond.client.aio import AsyncClient
    from sessiond.server.app import build_server
    from sessiond.server.ops.settings import Settings
    from sessiond.server.storage.s3 import S3Store

    counts = Counts()

    def store() -> S3Store:
        return S3Store(
            bucket,
            prefix="sessiond",
            endpoint_url=endpoint,
            region=REGION,
            access_key_id="testing",
            secret_access_key="testing",
            observer=counts.observe,
        )

    settings = Settings(listen="127.0.0.1:0", metrics_listen="", log_level="WARNING")
    server = build_server(settings, store=store())
    await server.start()
    client = AsyncClient(f"127.0.0.1:{server.port}")
    await client.start("chat")
    await client.chat("chat", "warm up")
    samples, seconds = [], []
    counts.take()
    for number in range(turns):
        started = time.perf_counter()
        await client.chat("chat", f"turn {number}")
        seconds.append(time.perf_counter() - started)
        samples.append(counts.take())
    chat = {"requests": summary(samples), "p50_ms": statistics.median(seconds) * 1000}

    await client.start("long")
    for number in range(messages // 2):
        await client.chat("long", f"message {number}")
    await client.close()
    await server.stop(0)

    # A new replica: nothing cached.
    counts.take()
    cold = build_server(settings, store=store())
    await cold.start()
    counts.take()  # the store's startup probe is not part of the turn
    client = AsyncClient(f"127.0.0.1:{cold.port}")
    started = time.perf_counter()
    turn = client.run("long", "next question")
    await turn.__aenter__()
    restore_seconds = time.perf_counter() - started
    restore_counts = counts.take()
    history = len(turn.history)
    await turn.finish()
    await turn.__aexit__(None, None, None)
    head = await client.get("long")
    await client.close()
    await cold.stop(0)
    return {
        "chat_turn": chat,
        "cold_run_start": {
            "history_messages": history,
            "requests": dict(restore_counts),
            "total_requests": sum(restore_counts.values()),
            "seconds": round(restore_seconds, 4),
            "message_count_after": head.message_count,
        },
    }


def strands_figures(endpoint: str, bucket: str, turns: int, messages: int) -> dict:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from strands import Agent
    from strands.agent.conversation_manager import NullConversationManager
    from strands.session.s3_session_manager import S3SessionManager

    from support.strands_model import ReplyModel

    counts = Counts()
    core = botocore.session.get_session()

    core.register("before-call.s3", lambda model, **kw: counts.observe(model.name, "ok"))
    session = boto3.Session(botocore_session=core, region_name=REGION, **CREDENTIALS)

    def agent(session_id: str) -> Agent:
        manager = S3SessionManager(
            session_id=session_id,
            bucket=bucket,
            prefix="strands",
            boto_session=session,
            endpoint_url=endpoint,
        )
        # No sliding window: restore (and the model) see the whole history, as
        # sessiond's Run does; the default window would restore the last 40 only.
        return Agent(
            model=ReplyModel(),
            session_manager=manager,
            callback_handler=None,
            conversation_manager=NullConversationManager(),
        )

    chatty = agent("chat")
    chatty("warm up")
    samples, seconds = [], []
    counts.take()
    for number in range(turns):
        started = time.perf_counter()
        chatty(f"turn {number}")
        seconds.append(time.perf_counter() - started)
        samples.append(counts.take())
    chat = {"requests": summary(samples), "p50_ms": statistics.median(seconds) * 1000}

    long = agent("long")
    for number in range(messages // 2):
        long(f"message {number}")
    counts.take()
    started = time.perf_counter()
    restored = agent("long")
    restore_seconds = time.perf_counter() - started
    restore_counts = counts.take()
    return {
        "agent_turn": chat,
        "cold_restore": {
            "history_messages": len(restored.messages),
            "requests": dict(restore_counts),
            "total_requests": sum(restore_counts.values()),
            "seconds": round(restore_seconds, 4),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        result = {
            "sessiond": asyncio.run(sessiond_figures(endpoint, bucket, args.turns, args.messages)),
            "strands": strands_figures(endpoint, bucket, args.turns, args.messages),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
