"""History packs: how a long history restores in a handful of requests.

Recent turns (with their messages) live in the head's ``tail``. When the tail
grows past a limit, a commit moves its ended turns into a new immutable
level-0 pack. Whenever the newest ``FANOUT`` packs share a level, they are
merged into one pack of the next level (a binary-counter style compaction), so
a history of N messages is held in O(log N) packs: about 8 for 1,000 messages
and 10 for 10,000. A cold restore is one GET of the head plus the packs in
parallel; the Strands ``message_<n>.json`` files are written beside them for
Strands readers, and sessiond never reads them to restore.

Pack keys are unique (random suffix), so a fenced writer's pack is never
referenced, and a cached pack never needs revalidation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sessiond.server.domain.codec import turn_json
from sessiond.server.domain.records import Head, Pack, PackRef, Turn

TAIL_MAX_TURNS = 16
TAIL_MAX_MESSAGES = 48
TAIL_MAX_BYTES = 192 * 1024
FANOUT = 4


@dataclass
class Compaction:
    """The outcome of planning: packs to write, and the head's new pack list and tail."""

    writes: list[tuple[str, Pack]] = field(default_factory=list)
    packs: list[PackRef] = field(default_factory=list)
    tail: list[Turn] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)


def _tail_bytes(turns: list[Turn]) -> int:
    return sum(len(turn_json(turn)) for turn in turns)


def needs_flush(tail: list[Turn]) -> bool:
    """True when the tail is past one of its limits and has ended turns to move."""
    ended = [turn for turn in tail if not turn.status.is_open]
    if not ended:
        return False
    messages = sum(len(turn.messages) for turn in tail)
    return (
        len(tail) > TAIL_MAX_TURNS
        or messages > TAIL_MAX_MESSAGES
        or _tail_bytes(tail) > TAIL_MAX_BYTES
    )


async def plan_compaction(
    head: Head,
    *,
    pack_key: Callable[[int, int, int], str],
    load: Callable[[PackRef], Awaitable[Pack]],
) -> Compaction | None:
    """Plans moving the tail's ended turns into packs, merging packs as needed.

    Args:
        head: The head as it will be committed (its tail includes this turn).
        pack_key: Makes a new unique pack key from (level, first turn, last turn).
        load: Reads an existing pack (for merges; usually a cache hit).

    Returns:
        None when nothing needs to move; else the writes and the new layout.
        Only the ended prefix of the tail moves: an open turn stays in the head.
    """
    if not needs_flush(head.tail):
        return None
    split = len(head.tail)
    while split > 0 and head.tail[split - 1].status.is_open:
        split -= 1
    moving, staying = head.tail[:split], head.tail[split:]
    pending: dict[str, Pack] = {}
    refs = list(head.packs)
    superseded: list[str] = []

    def add(level: int, turns: list[Turn]) -> None:
        key = pack_key(level, turns[0].number, turns[-1].number)
        pack = Pack(session_id=head.session_id, level=level, turns=turns)
        pending[key] = pack
        refs.append(
            PackRef(
                key=key,
                level=level,
                first_turn=turns[0].number,
                last_turn=turns[-1].number,
                message_count=sum(len(turn.messages) for turn in turns),
                size=0,
            )
        )

    add(0, moving)
    while len(refs) >= FANOUT and len({ref.level for ref in refs[-FANOUT:]}) == 1:
        merging = refs[-FANOUT:]
        del refs[-FANOUT:]
        turns: list[Turn] = []
        for ref in merging:
            pack = pending.pop(ref.key, None)
            if pack is None:
                pack = await load(ref)
                superseded.append(ref.key)
            turns.extend(pack.turns)
        add(merging[0].level + 1, turns)
    return Compaction(
        writes=list(pending.items()), packs=refs, tail=list(staying), superseded=superseded
    )
