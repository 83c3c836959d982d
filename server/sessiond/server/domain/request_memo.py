"""What every commit needs from a head's request records, kept beside the list.

Every turn asks "was this request id applied?" and every commit encodes the
head with its up to 64 request records. Read from the records themselves,
both touch 64 objects that on a busy replica are out of the CPU's caches
(together ~10 % of a memory-store turn). A :class:`RequestMemo` answers both
from two compact objects: a set of the ids and the records' JSON as one
blob, which a commit extends by the new record and trims at the front.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

#: How a memo recognises the list it was made for: the list's identity, its
#: length and its last record's identity. Replacing the list, or changing it
#: anywhere but through ``RequestMemo.appended``, makes the memo stale.
Shape = tuple[int, int, int]


class _Record(Protocol):
    request_id: str

    def model_dump_json(self) -> str: ...


def shape_of(records: Sequence[object]) -> Shape:
    """The shape of a request list (see ``Shape``)."""
    return (id(records), len(records), id(records[-1]) if records else 0)


@dataclass(frozen=True, slots=True)
class RequestMemo:
    """The ids and the JSON of a head's request records, for one list shape.

    Attributes:
        shape: The shape of the list this memo describes.
        ids: A superset of the records' request ids (false positives only:
            trimmed ids stay until the set is rebuilt).
        json: The records' JSON, comma-separated, without brackets.
        ends: The end offset of each record's JSON within ``json``.
    """

    shape: Shape
    ids: frozenset[str]
    json: bytes
    ends: tuple[int, ...]

    @classmethod
    def of(cls, records: Sequence[_Record]) -> RequestMemo:
        """Builds the memo of ``records`` from the records themselves."""
        parts = [record.model_dump_json().encode() for record in records]
        ends, offset = [], -1
        for part in parts:
            offset += len(part) + 1
            ends.append(offset)
        return cls(
            shape_of(records),
            frozenset(record.request_id for record in records),
            b",".join(parts),
            tuple(ends),
        )

    def moved_to(self, records: Sequence[_Record]) -> RequestMemo:
        """This memo for a copy of its list (same records, another list object)."""
        return RequestMemo(shape_of(records), self.ids, self.json, self.ends)

    def appended(self, record: _Record, records: Sequence[_Record]) -> RequestMemo:
        """The memo after ``record`` was appended and the front of the list trimmed.

        Args:
            record: The record just appended.
            records: The list after appending and trimming (its last item is
                ``record``; the records before it are this memo's last ones).
        """
        part = record.model_dump_json().encode()
        json = self.json + b"," + part if self.json else part
        ends = (*self.ends, len(json))
        dropped = len(ends) - len(records)
        if dropped > 0:
            cut = ends[dropped - 1] + 1  # the comma after the last dropped record
            json = json[cut:]
            ends = tuple(end - cut for end in ends[dropped:])
        # Trimmed ids linger in the superset; rebuild it when it has doubled.
        ids = (
            self.ids | {record.request_id}
            if len(self.ids) < 2 * len(records)
            else frozenset(r.request_id for r in records)
        )
        return RequestMemo(shape_of(records), ids, json, ends)
