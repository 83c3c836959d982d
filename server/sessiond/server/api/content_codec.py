"""Conversation content between protobuf and stored JSON (see ``sessiond.content``).

The codec lives in the shared ``sessiond.content`` module so clients (a
Strands session manager, say) convert exactly as the server does.
"""

from sessiond.content import (
    block_from_dict,
    block_to_dict,
    message_from_dict,
    message_to_dict,
)

__all__ = ["block_from_dict", "block_to_dict", "message_from_dict", "message_to_dict"]
