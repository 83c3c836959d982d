"""The Python client of sessiond.

- :class:`AsyncClient` (``sessiond.client.aio``): asyncio, one method per RPC.
- :class:`Client` (``sessiond.client.sync``): the same methods, blocking.
- ``sessiond.client.cli``: the ``sessiond`` command line.

Errors are the typed exceptions of :mod:`sessiond.errors`.
"""

from sessiond.client.aio import AsyncClient
from sessiond.client.bundles import ExportedBundle, TransferProgress
from sessiond.client.messages import event, message_text, text_message
from sessiond.client.sync import Client, Turn
from sessiond.client.turns import RunTurn

__all__ = [
    "AsyncClient",
    "Client",
    "ExportedBundle",
    "RunTurn",
    "TransferProgress",
    "Turn",
    "event",
    "message_text",
    "text_message",
]
