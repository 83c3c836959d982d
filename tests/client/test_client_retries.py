"""Retries: gRPC's service config retries UNAVAILABLE for reads and for mutations (which
always carry a request id, the same one on every attempt); ABORTED and streams never.

Attempts are counted where they arrive: by a scripted test server
(``fake_server``) for the exact sequence, and by the real server's metrics
with a store that fails long enough to exhaust the server's own retries.
"""

from __future__ import annotations

import json

import grpc
import pytest
from fake_server import FakeService, start_fake_server
from prometheus_client import generate_latest

from sessiond.client import AsyncClient
from sessiond.client.connection import IDEMPOTENT_MUTATIONS, READ_METHODS, service_config
from sessiond.errors import Aborted, StoreUnavailableError, Unavailable
from sessiond.server.domain.repository import TRANSIENT_ATTEMPTS
from sessiond.server.storage.memory import FailNext, MemoryStore
from sessiond.server.storage.port import StoreUnavailable

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def test_service_config_retries_only_idempotent_calls_on_unavailable() -> None:
    config = json.loads(service_config())
    (method_config,) = config["methodConfig"]
    names = {entry["method"] for entry in method_config["name"]}
    assert names == set(READ_METHODS) | set(IDEMPOTENT_MUTATIONS)
    assert not names & {"Run", "Export", "Import"}
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert json.loads(service_config(retries=False)) == {"methodConfig": []}


@pytest.fixture
async def fake():
    service = FakeService()
    server, port = await start_fake_server(service)
    async with AsyncClient(f"127.0.0.1:{port}", timeout=10) as client:
        yield service, client
    await server.stop(0)


async def test_reads_are_retried_on_unavailable(fake) -> None:
    service, client = fake
    service.fail("Get", UNAVAILABLE, UNAVAILABLE)
    assert (await client.get("s")).session_id == "s"
    assert len(service.of("Get")) == 3


async def test_mutations_are_retried_with_one_generated_request_id(fake) -> None:
    service, client = fake
    service.fail("Chat", UNAVAILABLE, UNAVAILABLE)
    assert (await client.chat("s", "once")).text == "echo: once"
    request_ids = {request.request_id for request in service.of("Chat")}
    assert len(service.of("Chat")) == 3 and len(request_ids) == 1
    assert request_ids.pop().startswith("py-")
    await client.chat("s", "twice", request_id="mine")
    assert service.of("Chat")[-1].request_id == "mine"
    # Each call has its own id.
    await client.chat("s", "again")
    assert len({request.request_id for request in service.of("Chat")}) == 3


async def test_aborted_is_never_retried(fake) -> None:
    service, client = fake
    service.fail("Chat", grpc.StatusCode.ABORTED)
    with pytest.raises(Aborted):
        await client.chat("s", "busy?")
    assert len(service.of("Chat")) == 1


async def test_streams_are_never_retried(fake) -> None:
    service, client = fake
    service.fail("Run", UNAVAILABLE)
    with pytest.raises(Unavailable):
        async with client.run("s", "go"):
            pass
    assert len(service.of("Run")) == 1
    service.fail("Export", UNAVAILABLE)
    with pytest.raises(Unavailable):
        [response async for response in client.export()]
    assert len(service.of("Export")) == 1


async def test_retries_can_be_turned_off(fake) -> None:
    service, client = fake
    async with AsyncClient(client.target, retries=False) as plain:
        service.fail("Get", UNAVAILABLE)
        with pytest.raises(Unavailable):
            await plain.get("s")
    assert len(service.of("Get")) == 1


def calls(served, method: str) -> dict[str, float]:
    """How many calls of ``method`` the real server answered, by status code."""
    found: dict[str, float] = {}
    for line in generate_latest(served.server.metrics.registry).decode().splitlines():
        if line.startswith("sessiond_rpc_requests_total{") and f'method="{method}"' in line:
            code = line.split('code="')[1].split('"')[0]
            found[code] = float(line.rsplit(" ", 1)[1])
    return found


async def test_real_server_unavailable_is_retried(serve) -> None:
    store = MemoryStore()
    served = await serve(store=store)
    await served.client.start("s")
    # The server retries the store itself; failing every one of its attempts
    # makes one call fail with STORE_UNAVAILABLE, which the client retries.
    store.hooks.append(
        FailNext("get", "head.json", StoreUnavailable("blip"), times=TRANSIENT_ATTEMPTS)
    )
    assert (await served.client.get("s")).session_id == "s"
    assert calls(served, "Get") == {"UNAVAILABLE": 1.0, "OK": 1.0}

    store.hooks.append(
        FailNext("put", "head.json", StoreUnavailable("blip"), times=TRANSIENT_ATTEMPTS)
    )
    assert (await served.client.chat("s", "hi")).text == "echo: hi"
    assert calls(served, "Chat") == {"UNAVAILABLE": 1.0, "OK": 1.0}
    assert (await served.client.get("s")).turn_count == 1

    async with AsyncClient(served.target, retries=False) as plain:
        store.hooks.append(
            FailNext("get", "head.json", StoreUnavailable("blip"), times=TRANSIENT_ATTEMPTS)
        )
        with pytest.raises(StoreUnavailableError) as caught:
            await plain.get("s")
    assert caught.value.reason == "STORE_UNAVAILABLE"
