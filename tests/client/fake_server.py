"""A test-only gRPC server for what sessiond's own server cannot show: TLS, mTLS, tokens,
and every attempt a retrying client makes.

:class:`FakeService` answers ``Get`` with a session whose title is the
``authorization`` metadata the call carried (so a test sees what the client
sent), sleeping first for ids starting with ``slow`` (deadlines); it records
every attempt of every call and fails the ones a test scripts. Certificates
are made on the fly with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sessiond.v1 import session_pb2, session_service_pb2

pb = session_service_pb2


@dataclass
class Pki:
    """PEM files of a CA, a server certificate and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    names: list[x509.GeneralName] = (),  # type: ignore[assignment]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path, *, server_names: list[str]) -> Pki:
    """Writes a CA, a server certificate for ``server_names`` and a client certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("sessiond test CA", ca_key, None)
    alt: list[x509.GeneralName] = []
    for name in server_names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(server_names[0], server_key, ("sessiond test CA", ca_key), names=alt)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate("client", client_key, ("sessiond test CA", ca_key))

    def write(name: str, data: bytes) -> Path:
        path = directory / name
        path.write_bytes(data)
        return path

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    pem = serialization.Encoding.PEM
    return Pki(
        ca=write("ca.pem", ca.public_bytes(pem)),
        server_cert=write("server.pem", server.public_bytes(pem)),
        server_key=write("server.key", key_pem(server_key)),
        client_cert=write("client.pem", client.public_bytes(pem)),
        client_key=write("client.key", key_pem(client_key)),
    )


class FakeService:
    """``Get``, ``Chat``, ``Run`` and ``Export`` of ``sessiond.v1.SessionService``, scripted.

    Every attempt that reaches the server is recorded in ``attempts`` as
    ``(method, request, metadata)``; ``fail(method, code, ...)`` makes the
    next attempts of ``method`` fail with those codes, one each.
    """

    def __init__(self) -> None:
        self.attempts: list[tuple[str, Any, dict[str, str]]] = []
        self._failures: dict[str, list[grpc.StatusCode]] = {}

    def fail(self, method: str, *codes: grpc.StatusCode) -> None:
        """Fails the next attempts of ``method`` with ``codes``, in order."""
        self._failures.setdefault(method, []).extend(codes)

    def of(self, method: str) -> list[Any]:
        """The requests of every attempt of ``method``."""
        return [request for name, request, _ in self.attempts if name == method]

    async def _enter(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.attempts.append((method, request, dict(context.invocation_metadata() or ())))
        pending = self._failures.get(method)
        if pending:
            await context.abort(pending.pop(0), f"injected failure of {method}")

    async def get(self, request: pb.GetRequest, context: grpc.aio.ServicerContext) -> Any:
        await self._enter("Get", request, context)
        if request.session_id.startswith("slow"):
            await asyncio.sleep(5)
        seen = dict(context.invocation_metadata() or ())
        title = str(seen.get("authorization", ""))
        return pb.GetResponse(
            session=session_pb2.Session(session_id=request.session_id, title=title)
        )

    async def chat(self, request: pb.ChatRequest, context: grpc.aio.ServicerContext) -> Any:
        await self._enter("Chat", request, context)
        return pb.ChatResponse(text=f"echo: {request.text}")

    async def run(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        first = await anext(aiter(requests))
        await self._enter("Run", first, context)
        yield pb.RunResponse(ended=pb.RunEnded())

    async def export(self, request: pb.ExportRequest, context: grpc.aio.ServicerContext) -> Any:
        await self._enter("Export", request, context)
        yield pb.ExportResponse(manifest=pb.ExportManifest(format_version=1))


def _handler(service: FakeService) -> grpc.GenericRpcHandler:
    def unary(call: Any, request: Any, response: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )

    return grpc.method_handlers_generic_handler(
        "sessiond.v1.SessionService",
        {
            "Get": unary(service.get, pb.GetRequest, pb.GetResponse),
            "Chat": unary(service.chat, pb.ChatRequest, pb.ChatResponse),
            "Run": grpc.stream_stream_rpc_method_handler(
                service.run,
                request_deserializer=pb.RunRequest.FromString,
                response_serializer=pb.RunResponse.SerializeToString,
            ),
            "Export": grpc.unary_stream_rpc_method_handler(
                service.export,
                request_deserializer=pb.ExportRequest.FromString,
                response_serializer=pb.ExportResponse.SerializeToString,
            ),
        },
    )


async def start_fake_server(
    service: FakeService | None = None,
    pki: Pki | None = None,
    *,
    require_client_cert: bool = False,
) -> tuple[grpc.aio.Server, int]:
    """Starts ``service`` on 127.0.0.1:0 (TLS when ``pki`` is given); returns it and its port."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([_handler(service or FakeService())])
    if pki is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        credentials = grpc.ssl_server_credentials(
            [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
            root_certificates=pki.ca.read_bytes() if require_client_cert else None,
            require_client_auth=require_client_cert,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, port
