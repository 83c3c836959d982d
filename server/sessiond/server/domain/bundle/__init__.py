"""Session bundles: Export (sessions → bundle) and Import (bundle → sessions).

``format`` describes the files; ``exporter`` and ``importer`` are the two
directions; ``spool``, ``unpack`` and ``verify`` keep bundles on local disk
(never whole in memory) and check them before anything is written.
"""

from sessiond.server.domain.bundle.exporter import (
    BundleExporter,
    ExportChunk,
    ExportDone,
    ExportEvent,
    ExportProgress,
)
from sessiond.server.domain.bundle.importer import BundleImporter, ImportResult

__all__ = [
    "BundleExporter",
    "BundleImporter",
    "ExportChunk",
    "ExportDone",
    "ExportEvent",
    "ExportProgress",
    "ImportResult",
]
