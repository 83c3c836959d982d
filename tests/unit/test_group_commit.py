"""Group commit of tenant documents: concurrent changes share read-change-write cycles."""

from __future__ import annotations

import asyncio

import pytest

from sessiond.server.domain.group_commit import GroupCommitter


class Document:
    """A stand-in for an index segment: a set of names, written by cycles."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.cycles: list[int] = []  # batch size of each cycle
        self.fail_next = False

    async def write(self, changes) -> list[bool]:
        await asyncio.sleep(0.01)  # the store round trip: others queue up meanwhile
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("store failed")
        draft = set(self.names)
        results = [change(draft) for change in changes]
        self.names = draft
        self.cycles.append(len(changes))
        return results


def add(name: str):
    def change(names: set[str]) -> bool:
        if name in names:
            return False
        names.add(name)
        return True

    return change


async def test_concurrent_changes_share_cycles_and_each_gets_its_result() -> None:
    doc, group = Document(), GroupCommitter()

    results = await asyncio.gather(
        *(group.submit("seg", add(f"s{i}"), doc.write) for i in range(64)),
        group.submit("seg", add("s0"), doc.write),  # a duplicate: nothing to do
    )

    assert doc.names == {f"s{i}" for i in range(64)}
    assert results[:64] == [True] * 64 and results[64] is False
    # The cycle starts once the submitting callers wait: all 65 go in one write.
    assert doc.cycles == [65]


async def test_keys_are_independent() -> None:
    a, b, group = Document(), Document(), GroupCommitter()

    await asyncio.gather(group.submit("a", add("x"), a.write), group.submit("b", add("y"), b.write))

    assert (a.names, b.names) == ({"x"}, {"y"})
    assert a.cycles == [1] and b.cycles == [1]


async def test_a_failed_cycle_fails_its_batch_only() -> None:
    doc, group = Document(), GroupCommitter()
    doc.fail_next = True
    first = asyncio.ensure_future(group.submit("seg", add("a"), doc.write))
    await asyncio.sleep(0)  # the first cycle is under way
    later = asyncio.ensure_future(group.submit("seg", add("b"), doc.write))

    with pytest.raises(RuntimeError, match="store failed"):
        await first
    assert await later is True
    assert doc.names == {"b"}


async def test_a_caller_that_gives_up_does_not_take_the_batch_down() -> None:
    doc, group = Document(), GroupCommitter()
    first = asyncio.ensure_future(group.submit("seg", add("a"), doc.write))
    await asyncio.sleep(0)
    impatient = asyncio.ensure_future(group.submit("seg", add("b"), doc.write))
    patient = asyncio.ensure_future(group.submit("seg", add("c"), doc.write))
    await asyncio.sleep(0)

    first.cancel()
    impatient.cancel()

    assert await patient is True
    # The cancelled callers' changes may or may not have been written (as
    # with any write whose caller left); the patient one was, and the cycle
    # of the first went on.
    assert {"a", "c"} <= doc.names
