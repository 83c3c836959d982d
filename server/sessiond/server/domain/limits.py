"""Size limits enforced on requests before any storage call."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Configurable limits; every one is enforced with INVALID_ARGUMENT.

    Attributes:
        max_message_bytes: A message's JSON (with its redaction) in bytes.
        max_blocks_per_message: Content blocks in one message.
        max_messages_per_update: Messages in one append / finish / hibernate.
        max_state_bytes: An agent state's JSON in bytes.
        max_snapshot_bytes: A hibernation snapshot in bytes.
        max_events_per_update: Timeline events in one update.
        max_event_bytes: One event's data JSON in bytes.
        max_reviews_per_turn: Review requests in one hibernate.
        max_text_chars: Characters of Chat input text.
    """

    max_message_bytes: int = 1024 * 1024
    max_blocks_per_message: int = 256
    max_messages_per_update: int = 128
    max_state_bytes: int = 256 * 1024
    max_snapshot_bytes: int = 4 * 1024 * 1024
    max_events_per_update: int = 256
    max_event_bytes: int = 64 * 1024
    max_reviews_per_turn: int = 32
    max_text_chars: int = 256 * 1024
