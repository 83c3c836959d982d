"""The same workloads through Strands' own S3SessionManager (``python -m bench.worker strands``).

Also Strands agents persisted by sessiond through ``SessiondSessionManager``
(the ``strands-manager`` phase), whose store requests are counted on the
server, from its Prometheus counter, as for every other sessiond figure.

The real ``strands-agents`` package with a deterministic model
(``tests/support/strands_model.py``): what is measured is persistence.
Requests are counted client-side with a botocore ``before-call.s3`` hook on
the session every S3SessionManager client is made from; persistence latency
is the time spent inside the session manager's hooks during a turn.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from strands import Agent
from strands.agent.conversation_manager import (
    NullConversationManager,
    SlidingWindowConversationManager,
)
from strands.session.s3_session_manager import S3SessionManager

from bench.procs import by_op, parse_store_requests
from bench.sessiond_tasks import text_of
from sessiond.strands import SessiondSessionManager
from support.strands_model import ReplyModel

REGION = "us-east-1"
_LOCK = threading.Lock()
COUNTS: Counter[str] = Counter()
_SESSIONS: dict[str, boto3.Session] = {}


def _count(model: Any, **_: Any) -> None:
    with _LOCK:
        COUNTS[model.name] += 1


def boto_session(endpoint: str) -> boto3.Session:
    """One boto3 session per endpoint, counting every S3 call of its clients."""
    if endpoint not in _SESSIONS:
        core = botocore.session.get_session()
        core.register("before-call.s3", _count)
        _SESSIONS[endpoint] = boto3.Session(
            botocore_session=core,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    return _SESSIONS[endpoint]


def taken() -> dict[str, int]:
    """The S3 calls counted since the last call, by operation."""
    with _LOCK:
        counts = dict(COUNTS)
        COUNTS.clear()
    return counts


class TimedSessionManager(S3SessionManager):
    """S3SessionManager that adds up the time spent persisting (its hook callbacks)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.persist_seconds = 0.0
        super().__init__(*args, **kwargs)

    def _timed(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            self.persist_seconds += time.perf_counter() - started

    def append_message(self, *args: Any, **kwargs: Any) -> None:
        """Timed ``append_message``."""
        return self._timed(super().append_message, *args, **kwargs)

    def sync_agent(self, *args: Any, **kwargs: Any) -> None:
        """Timed ``sync_agent``."""
        return self._timed(super().sync_agent, *args, **kwargs)

    def redact_latest_message(self, *args: Any, **kwargs: Any) -> None:
        """Timed ``redact_latest_message``."""
        return self._timed(super().redact_latest_message, *args, **kwargs)


def make_agent(
    endpoint: str,
    bucket: str,
    prefix: str,
    session_id: str,
    *,
    sessiond_written: bool = False,
    pool: int = 10,
) -> tuple[Agent, TimedSessionManager]:
    """An agent persisting to S3 with Strands' S3SessionManager.

    Strands' default window would restore only the last 40 messages; the
    benchmark restores whole histories (as sessiond's Run does), so sessions
    Strands wrote use the NullConversationManager and sessions sessiond wrote
    (whose agent.json names the sliding window) a window larger than any history.
    """
    manager = TimedSessionManager(
        session_id=session_id,
        bucket=bucket,
        prefix=prefix,
        boto_session=boto_session(endpoint),
        endpoint_url=endpoint,
        boto_client_config=Config(max_pool_connections=pool),
    )
    conversation = (
        SlidingWindowConversationManager(window_size=10**7)
        if sessiond_written
        else NullConversationManager()
    )
    agent = Agent(
        model=ReplyModel(),
        session_manager=manager,
        callback_handler=None,
        conversation_manager=conversation,
    )
    return agent, manager


def task_turns(
    endpoint: str,
    bucket: str,
    prefix: str,
    session_id: str,
    turns: int,
    warmup: int = 2,
    text_bytes: int = 120,
) -> dict[str, Any]:
    """Sequential agent turns: latency of the call, persistence latency, S3 calls per turn."""
    agent, manager = make_agent(endpoint, bucket, prefix, session_id)
    for number in range(warmup):
        agent(text_of(-1 - number, text_bytes))
    taken()
    latencies, persist, counts = [], [], []
    for number in range(turns):
        manager.persist_seconds = 0.0
        started = time.perf_counter()
        agent(text_of(number, text_bytes))
        latencies.append(time.perf_counter() - started)
        persist.append(manager.persist_seconds)
        counts.append(taken())
    return {"latencies": latencies, "persist": persist, "counts": counts, "turns": turns}


def task_model_only(turns: int, text_bytes: int = 120) -> dict[str, Any]:
    """The same agent without a session manager: the loop's own cost per turn."""
    agent = Agent(
        model=ReplyModel(), callback_handler=None, conversation_manager=NullConversationManager()
    )
    agent("warm up")
    latencies = []
    for number in range(turns):
        started = time.perf_counter()
        agent(text_of(number, text_bytes))
        latencies.append(time.perf_counter() - started)
    return {"latencies": latencies}


def task_restore(
    endpoint: str, bucket: str, prefix: str, session_ids: list[str], sessiond_written: bool = True
) -> dict[str, Any]:
    """Cold restores: a new agent (and S3 client) per session, timed and counted."""
    samples = []
    for sid in session_ids:
        taken()
        started = time.perf_counter()
        agent, _ = make_agent(endpoint, bucket, prefix, sid, sessiond_written=sessiond_written)
        seconds = time.perf_counter() - started
        samples.append(
            {
                "session_id": sid,
                "seconds": seconds,
                "requests": taken(),
                "messages": len(agent.messages),
            }
        )
    return {"samples": samples}


def task_throughput(
    endpoint: str,
    bucket: str,
    prefix: str,
    concurrency: int,
    seconds: float,
    text_bytes: int = 120,
) -> dict[str, Any]:
    """``concurrency`` agents (one thread each) running turns back to back for ``seconds``."""
    agents = []
    for number in range(concurrency):
        agent, _ = make_agent(endpoint, bucket, prefix, f"{prefix}-tp-{number:03d}", pool=2)
        agent("warm up")
        agents.append(agent)
    taken()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    def loop(index: int) -> None:
        number = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            agents[index](text_of(index * 1000 + number, text_bytes))
            with _LOCK:
                latencies.append(time.perf_counter() - started)
            number += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(loop, range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "turns": len(latencies),
        "seconds": elapsed,
        "latencies": latencies,
        "requests": taken(),
    }


# -- Strands agents persisted through sessiond (SessiondSessionManager) ---------------


def _server_requests(metrics_url: str) -> Counter[str]:
    """The sessiond server's store request counters now (its Prometheus endpoint)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        return parse_store_requests(response.read().decode())


def _requests_since(metrics_url: str, before: Counter[str]) -> dict[str, int]:
    delta = _server_requests(metrics_url)
    delta.subtract(before)
    return by_op(delta)


def make_sessiond_agent(target: str, session_id: str) -> tuple[Agent, SessiondSessionManager]:
    """An agent persisted by sessiond (the window `make_agent` gives sessions sessiond wrote)."""
    manager = SessiondSessionManager(session_id, target=target)
    agent = Agent(
        model=ReplyModel(),
        session_manager=manager,
        callback_handler=None,
        conversation_manager=SlidingWindowConversationManager(window_size=10**7),
    )
    return agent, manager


def task_manager_restore(target: str, metrics_url: str, session_ids: list[str]) -> dict[str, Any]:
    """Restores through SessiondSessionManager: a new agent per session, timed; server requests."""
    samples = []
    for sid in session_ids:
        before = _server_requests(metrics_url)
        started = time.perf_counter()
        agent, manager = make_sessiond_agent(target, sid)
        seconds = time.perf_counter() - started
        samples.append(
            {
                "session_id": sid,
                "seconds": seconds,
                "requests": _requests_since(metrics_url, before),
                "messages": len(agent.messages),
            }
        )
        manager.close()
    return {"samples": samples}


def task_manager_turns(
    target: str,
    metrics_url: str,
    session_id: str,
    turns: int,
    warmup: int = 2,
    text_bytes: int = 120,
) -> dict[str, Any]:
    """Sequential agent turns through SessiondSessionManager: call latency, server requests/turn."""
    agent, manager = make_sessiond_agent(target, session_id)
    for number in range(warmup):
        agent(text_of(-1 - number, text_bytes))
    latencies, counts = [], []
    for number in range(turns):
        before = _server_requests(metrics_url)
        started = time.perf_counter()
        agent(text_of(number, text_bytes))
        latencies.append(time.perf_counter() - started)
        counts.append(_requests_since(metrics_url, before))
    manager.close()
    return {"latencies": latencies, "counts": counts, "turns": turns}
