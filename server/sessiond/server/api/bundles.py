"""Export and Import RPCs (placeholder until the bundle module lands)."""

from __future__ import annotations

from sessiond.errors import InternalError
from sessiond.server.domain.context import ServiceContext


class BundleRpc:
    """Streams bundles in and out."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def export(self, keys, request):
        """Not implemented yet."""
        raise InternalError("export is not implemented yet")
        yield  # pragma: no cover

    async def import_(self, keys, requests):
        """Not implemented yet."""
        raise InternalError("import is not implemented yet")
