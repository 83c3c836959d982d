"""Hypothesis strategies for every request message of ``sessiond.v1.SessionService``.

Built from the field strategies of :mod:`support.fuzz_strategies`. The RPCs
that do the most (Start, Chat, Run) mix fully hostile requests with
*mutated* ones: valid requests with one or two hostile fields, which get
past validation and reach the code behind it.
"""

from __future__ import annotations

from hypothesis import strategies as st

from sessiond.server.domain.validation import ID_PATTERN
from sessiond.v1 import content_pb2, turn_pb2
from sessiond.v1 import session_service_pb2 as pb
from support.fuzz_strategies import (
    SEEDED,
    decisions,
    enums,
    hostile_ids,
    json_texts,
    labels,
    messages,
    mutated,
    optional_ids,
    page_sizes,
    page_tokens,
    session_ids,
    texts,
    updates,
    valid_messages,
)


def run_opens() -> st.SearchStrategy[pb.RunOpen]:
    tools = st.builds(
        pb.ToolSpec,
        name=hostile_ids(),
        description=texts(),
        input_schema_json=json_texts(),
        requires_review=st.booleans(),
    )
    valid = {
        "session_id": st.sampled_from(SEEDED),
        "agent_id": st.just(""),
        "input": valid_messages(),
        "resume": st.just(False),
        "engine": st.sampled_from(["", "client", "echo"]),
        "checkpoint": st.sampled_from([0, 1, 2]),
        "request_id": st.from_regex(ID_PATTERN, fullmatch=True) | st.just(""),
        "history_limit": st.integers(0, 5),
        "tools": st.just([]),
        "model": st.just(""),
    }
    hostile = {
        "session_id": hostile_ids(),
        "agent_id": hostile_ids(),
        "input": st.one_of(st.none(), messages()),
        "resume": st.just(True),
        "engine": st.sampled_from(["nope", "../x", "client"]),
        "checkpoint": enums(),
        "request_id": hostile_ids(),
        "history_limit": st.integers(-2, 5),
        "tools": st.lists(tools, max_size=2),
        "model": st.sampled_from(["gpt", "../x"]),
    }
    mostly_valid = mutated(pb.RunOpen, valid, hostile)
    return st.one_of(mostly_valid, mostly_valid, mostly_valid, st.builds(pb.RunOpen, **hostile))


def run_actions() -> st.SearchStrategy[pb.RunRequest]:
    """Any Run message but open."""
    reviews = st.builds(
        turn_pb2.ReviewRequest,
        review_id=hostile_ids(),
        tool_use_id=hostile_ids(),
        tool_name=hostile_ids(),
        input_json=json_texts(),
        default_action=enums(),
    )
    snapshot = st.builds(turn_pb2.Snapshot, data=st.binary(max_size=64), content_type=texts())
    results = st.builds(
        pb.ToolResults,
        results=st.lists(
            st.builds(
                content_pb2.ToolResultBlock,
                tool_use_id=hostile_ids(),
                status=st.sampled_from(["success", "x"]),
            ),
            max_size=2,
        ),
    )
    return st.one_of(
        st.builds(lambda u: pb.RunRequest(append=pb.RunAppend(update=u)), updates()),
        st.builds(lambda u: pb.RunRequest(finish=pb.RunFinish(update=u)), updates()),
        st.builds(
            lambda u, s, r: pb.RunRequest(
                hibernate=pb.RunHibernate(update=u, snapshot=s, reviews=r)
            ),
            updates(),
            snapshot,
            st.lists(reviews, max_size=2),
        ),
        st.builds(lambda m: pb.RunRequest(fail=pb.RunFail(error_message=m)), texts()),
        st.builds(lambda r: pb.RunRequest(tool_results=r), results),
    )


def run_streams() -> st.SearchStrategy[list[pb.RunRequest]]:
    """A Run conversation: usually ``open`` first, then a few actions."""
    opened = st.builds(lambda o: pb.RunRequest(open=o), run_opens())
    conversation = st.builds(
        lambda first, rest: [first, *rest], opened, st.lists(run_actions(), max_size=3)
    )
    resumed = st.builds(  # continues turns the fuzzing hibernated
        lambda sid, rest: [pb.RunRequest(open=pb.RunOpen(session_id=sid, resume=True)), *rest],
        st.sampled_from(SEEDED),
        st.lists(run_actions(), max_size=2),
    )
    return st.one_of(
        conversation,
        conversation,
        conversation,
        resumed,
        st.lists(run_actions(), max_size=2),
        st.builds(lambda a, b: [a, b], opened, opened),
    )


def _starts() -> st.SearchStrategy[pb.StartRequest]:
    valid = {
        "session_id": st.from_regex(ID_PATTERN, fullmatch=True) | st.just(""),
        "agent_id": st.just(""),
        "title": st.text(max_size=20).filter(lambda t: "\x00" not in t),
        "labels": st.just({"team": "fuzz"}),
        "metadata": st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5)),
        "parent_session_id": st.just("") | st.sampled_from(SEEDED),
        "request_id": st.just(""),
        "return_existing": st.booleans(),
        "agent_state_json": st.just("") | st.just('{"k": [1, "x"]}'),
    }
    hostile = {
        "session_id": hostile_ids(),
        "agent_id": hostile_ids(),
        "title": texts(),
        "labels": labels(),
        "metadata": st.dictionaries(texts(), texts(), max_size=2),
        "parent_session_id": hostile_ids(),
        "request_id": hostile_ids(),
        "return_existing": st.booleans(),
        "agent_state_json": json_texts(),
    }
    return st.one_of(
        mutated(pb.StartRequest, valid, hostile), st.builds(pb.StartRequest, **hostile)
    )


def _chats() -> st.SearchStrategy[pb.ChatRequest]:
    valid = {
        "session_id": st.sampled_from(SEEDED),
        "agent_id": st.just(""),
        "text": st.text(min_size=1, max_size=30),
        "engine": st.sampled_from(["", "echo"]),
        "checkpoint": st.sampled_from([0, 1, 2]),
        "request_id": st.just("") | st.from_regex(ID_PATTERN, fullmatch=True),
        "model": st.just(""),
    }
    hostile = {
        "session_id": hostile_ids(),
        "agent_id": hostile_ids(),
        "text": texts(),
        "engine": st.sampled_from(["client", "nope", "../x"]),
        "checkpoint": enums(),
        "request_id": hostile_ids(),
        "model": st.sampled_from(["m", "../x"]),
    }
    mostly_valid = mutated(pb.ChatRequest, valid, hostile)
    return st.one_of(mostly_valid, mostly_valid, st.builds(pb.ChatRequest, **hostile))


def unary_requests() -> dict[str, st.SearchStrategy[object]]:
    """A strategy of request messages for every unary RPC, by method name."""
    ids, rids = session_ids(), optional_ids()
    resolutions = st.builds(pb.ReviewResolution, review_id=ids, decision=decisions())
    return {
        "Start": _starts(),
        "Chat": _chats(),
        "Resume": st.builds(
            pb.ResumeRequest, session_id=ids, resolutions=st.lists(resolutions, max_size=2),
            request_id=rids,
        ),
        "ListPendingReviews": st.builds(
            pb.ListPendingReviewsRequest, session_id=rids, page_size=page_sizes(),
            page_token=page_tokens(),
        ),
        "ResolveReview": st.builds(
            pb.ResolveReviewRequest, session_id=rids, review_id=ids, decision=decisions(),
            fingerprint=texts(), request_id=rids,
        ),
        "Archive": st.builds(pb.ArchiveRequest, session_id=ids, etag=texts(), request_id=rids),
        "Unarchive": st.builds(pb.UnarchiveRequest, session_id=ids, etag=texts(), request_id=rids),
        "Get": st.builds(pb.GetRequest, session_id=ids),
        "List": st.builds(
            pb.ListRequest, page_size=page_sizes(), page_token=page_tokens(),
            statuses=st.lists(enums(), max_size=3), labels=labels(), archived=enums(),
        ),
        "ListMessages": st.builds(
            pb.ListMessagesRequest, session_id=ids, agent_id=rids, page_size=page_sizes(),
            page_token=page_tokens(),
        ),
        "Delete": st.builds(pb.DeleteRequest, session_id=ids, etag=texts(), request_id=rids),
        "Replay": st.builds(
            pb.ReplayRequest, session_id=ids, page_size=page_sizes(), page_token=page_tokens()
        ),
    }  # fmt: skip


def export_requests() -> st.SearchStrategy[pb.ExportRequest]:
    return st.builds(
        pb.ExportRequest,
        session_ids=st.lists(hostile_ids(), max_size=3),
        include_archived=st.booleans(),
        destination_prefix=st.one_of(st.just(""), hostile_ids()),
    )


def import_streams() -> st.SearchStrategy[list[pb.ImportRequest]]:
    options = st.builds(
        pb.ImportOptions, source_prefix=st.one_of(st.just(""), hostile_ids()), on_conflict=enums()
    )
    chunks = st.lists(st.binary(max_size=256).map(lambda b: pb.ImportRequest(chunk=b)), max_size=3)
    return st.one_of(
        st.builds(lambda o, c: [pb.ImportRequest(options=o), *c], options, chunks),
        chunks,
    )
