"""Export and Import RPCs: protobuf in and out of the bundle module."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sessiond.errors import InvalidArgument
from sessiond.server.domain.bundle import (
    BundleExporter,
    BundleImporter,
    ExportChunk,
    ExportDone,
    ExportProgress,
)
from sessiond.server.domain.bundle.format import FORMAT_VERSION
from sessiond.server.domain.context import ServiceContext
from sessiond.server.domain.keys import TenantKeys
from sessiond.v1 import session_service_pb2 as pb

_POLICIES = {
    pb.IMPORT_CONFLICT_POLICY_UNSPECIFIED: False,
    pb.IMPORT_CONFLICT_POLICY_FAIL: False,
    pb.IMPORT_CONFLICT_POLICY_SKIP: True,
}


class BundleRpc:
    """Streams bundles in and out."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._exporter = BundleExporter(ctx)
        self._importer = BundleImporter(ctx)

    async def export(
        self, keys: TenantKeys, request: pb.ExportRequest
    ) -> AsyncIterator[pb.ExportResponse]:
        """Exports sessions: progress, tar.gz chunks (unless written to a prefix), the manifest."""
        events = self._exporter.export(
            keys,
            session_ids=list(request.session_ids),
            include_archived=request.include_archived,
            destination=request.destination_prefix,
        )
        try:
            async for event in events:
                if isinstance(event, ExportProgress):
                    yield pb.ExportResponse(
                        progress=pb.ExportProgress(
                            sessions_done=event.done, sessions_total=event.total
                        )
                    )
                elif isinstance(event, ExportChunk):
                    yield pb.ExportResponse(chunk=event.data)
                elif isinstance(event, ExportDone):
                    manifest = event.manifest
                    yield pb.ExportResponse(
                        manifest=pb.ExportManifest(
                            format_version=FORMAT_VERSION,
                            session_count=manifest.session_count,
                            message_count=manifest.message_count,
                            turn_count=manifest.turn_count,
                            review_count=manifest.review_count,
                            manifest_json=event.manifest_json,
                        )
                    )
        finally:
            # Runs the exporter's cleanup (spool, tar thread) even when the
            # client went away mid-stream.
            await events.aclose()

    async def import_(
        self, keys: TenantKeys, requests: AsyncIterator[pb.ImportRequest]
    ) -> pb.ImportResponse:
        """Imports a bundle: ``options`` first, then chunks (or nothing, with a source prefix)."""
        iterator = aiter(requests)
        first = await anext(iterator, None)
        if first is None or first.WhichOneof("item") != "options":
            raise InvalidArgument("the first message of Import must be options", field="options")
        options = first.options
        skip_existing = _POLICIES.get(options.on_conflict)
        if skip_existing is None:
            raise InvalidArgument("unknown on_conflict policy", field="options.on_conflict")

        async def chunks() -> AsyncIterator[bytes]:
            async for request in iterator:
                if request.WhichOneof("item") != "chunk":
                    raise InvalidArgument(
                        "only the first message of Import may carry options", field="options"
                    )
                yield request.chunk

        if options.source_prefix:
            async for _ in chunks():
                raise InvalidArgument("an import from source_prefix takes no chunks", field="chunk")
            result = await self._importer.import_prefix(
                keys, options.source_prefix, skip_existing=skip_existing
            )
        else:
            result = await self._importer.import_stream(keys, chunks(), skip_existing=skip_existing)
        return pb.ImportResponse(
            imported_session_ids=result.imported,
            skipped_session_ids=result.skipped,
            message_count=result.message_count,
        )
