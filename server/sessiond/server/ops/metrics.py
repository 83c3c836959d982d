"""Prometheus metrics: RPCs, store requests, claim conflicts, leases held."""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The server's metrics, in a registry of their own (one per server instance)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpcs = Counter(
            "sessiond_rpc_requests",
            "RPCs served, by method, status code and ErrorInfo reason (empty when OK).",
            ["method", "code", "reason"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "sessiond_rpc_duration_seconds",
            "RPC latency, by method.",
            ["method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.store_requests = Counter(
            "sessiond_store_requests",
            "Object-store requests, by operation and outcome.",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.claim_conflicts = Counter(
            "sessiond_claim_conflicts",
            "Head compare-and-swaps lost to another writer (callers refused because a "
            "session was busy are counted in sessiond_rpc_requests, reason SESSION_BUSY).",
            registry=self.registry,
        )
        self.leases_held = Gauge(
            "sessiond_leases_held", "Session leases held by this replica.", registry=self.registry
        )
        # The labelled children, looked up once per label set: ``labels()``
        # checks and locks on every call, a few times per turn.
        self._rpc_count = functools.cache(self.rpcs.labels)
        self._rpc_latency = functools.cache(self.rpc_seconds.labels)
        self._store_count = functools.cache(self.store_requests.labels)

    def rpc_done(self, method: str, code: str, seconds: float, reason: str = "") -> None:
        """Records a finished RPC (``reason``: its ErrorInfo reason, "" when it succeeded)."""
        self._rpc_count(method, code, reason).inc()
        self._rpc_latency(method).observe(seconds)

    def store_request(self, operation: str, outcome: str) -> None:
        """Records one object-store request."""
        self._store_count(operation, outcome).inc()

    def claim_conflict(self) -> None:
        """Records a lost CAS."""
        self.claim_conflicts.inc()

    def lease_change(self, delta: int) -> None:
        """Tracks leases held."""
        self.leases_held.inc(delta)
