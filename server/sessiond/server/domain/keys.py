"""Every storage key sessiond uses, built in one place from the tenant.

Layout (relative to the store's root)::

    tenants/<tenant>/session_<sid>/session.json                       Strands Session
    tenants/<tenant>/session_<sid>/agents/agent_<aid>/agent.json      Strands SessionAgent
    tenants/<tenant>/session_<sid>/agents/agent_<aid>/messages/message_<n>.json
    tenants/<tenant>/session_<sid>/multi_agents/...                   Strands multi-agent state
    tenants/<tenant>/session_<sid>/sessiond/head.json                 the commit point
    tenants/<tenant>/session_<sid>/sessiond/packs/<name>.json         history packs
    tenants/<tenant>/session_<sid>/sessiond/snapshots/<name>.snapshot turn snapshots
    tenants/<tenant>/sessiond/index/sessions/seg_<k>.json             listing index segments
    tenants/<tenant>/sessiond/index/inbox.json                        pending-review inbox
    tenants/<tenant>/sessiond/tombstones/<sid>.json                   deleted sessions
    tenants/<tenant>/exports/<prefix>/...                             bundles written to the store

The tenant always comes from the authenticated caller, never from a request
field; ids are validated (``validation.check_id``) before they reach here, and
the assertions below are defence in depth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sessiond.server.domain.validation import ID_PATTERN

MESSAGE_PREFIX = "message_"


def _checked(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(f"refusing to build a storage key from {value!r}")
    return value


#: Where a tenant's keys live under the store's root, by default.
DEFAULT_TENANT_PREFIX = "tenants/{tenant}/"
_PREFIX_SEGMENT = re.compile(r"\{tenant\}|[A-Za-z0-9_-][A-Za-z0-9._-]*")


def check_tenant_prefix(template: str, *, multi_tenant: bool) -> str:
    """Validates a ``--tenant-prefix`` template; returns it.

    The template is "" (the store's root: a prefix of Strands sessions served
    as it is) or ``/``-terminated segments, each a plain name or
    ``{tenant}``. Several tenants (authentication on) need ``{tenant}`` in
    it, or their sessions would share keys.

    Raises:
        ValueError: The template is malformed or unsafe.
    """
    if template:
        segments = template.split("/")
        if segments[-1] != "" or not all(_PREFIX_SEGMENT.fullmatch(s) for s in segments[:-1]):
            raise ValueError(
                f"tenant prefix {template!r}: use '' or names ending with '/', e.g. "
                "'tenants/{tenant}/' (letters, digits, '.', '_', '-'; no '..')"
            )
        if segments.count("{tenant}") > 1:
            raise ValueError(f"tenant prefix {template!r}: name {{tenant}} at most once")
    if multi_tenant and "{tenant}" not in template:
        raise ValueError(
            f"tenant prefix {template!r} has no {{tenant}}: with authentication every tenant "
            "needs its own prefix"
        )
    return template


@dataclass(frozen=True)
class TenantKeys:
    """Builds the keys of one tenant.

    Attributes:
        tenant: The authenticated tenant.
        prefix: Where the tenant's keys live under the store's root
            (``--tenant-prefix``, checked by :func:`check_tenant_prefix`).
    """

    tenant: str
    prefix: str = DEFAULT_TENANT_PREFIX

    def __post_init__(self) -> None:
        _checked(self.tenant)

    @property
    def root(self) -> str:
        """The tenant's prefix: "" or ending with a slash."""
        return self.prefix.replace("{tenant}", self.tenant)

    def session_prefix(self, session_id: str) -> str:
        """Everything of one session lives under this prefix (trailing slash)."""
        return f"{self.root}session_{_checked(session_id)}/"

    def session_json(self, session_id: str) -> str:
        """Strands' session.json."""
        return self.session_prefix(session_id) + "session.json"

    def agent_prefix(self, session_id: str, agent_id: str) -> str:
        """The agent's directory (trailing slash)."""
        return f"{self.session_prefix(session_id)}agents/agent_{_checked(agent_id)}/"

    def agent_json(self, session_id: str, agent_id: str) -> str:
        """Strands' agent.json."""
        return self.agent_prefix(session_id, agent_id) + "agent.json"

    def messages_prefix(self, session_id: str, agent_id: str) -> str:
        """The agent's messages/ directory (trailing slash)."""
        return self.agent_prefix(session_id, agent_id) + "messages/"

    def message(self, session_id: str, agent_id: str, index: int) -> str:
        """Strands' message_<n>.json, n without padding."""
        if index < 0:
            raise ValueError("message index must not be negative")
        return f"{self.messages_prefix(session_id, agent_id)}{MESSAGE_PREFIX}{index}.json"

    def multi_agents_prefix(self, session_id: str) -> str:
        """Reserved for Strands' multi-agent state (trailing slash)."""
        return self.session_prefix(session_id) + "multi_agents/"

    def sessiond_prefix(self, session_id: str) -> str:
        """Everything sessiond owns for a session (trailing slash)."""
        return self.session_prefix(session_id) + "sessiond/"

    def head(self, session_id: str) -> str:
        """The session's head object: its only commit point."""
        return self.sessiond_prefix(session_id) + "head.json"

    def pack(self, session_id: str, name: str) -> str:
        """A history pack."""
        return f"{self.sessiond_prefix(session_id)}packs/{name}.json"

    def snapshot(self, session_id: str, name: str) -> str:
        """A turn snapshot (opaque bytes; the content type is kept in the turn)."""
        return f"{self.sessiond_prefix(session_id)}snapshots/{name}.snapshot"

    @property
    def index_prefix(self) -> str:
        """The listing index segments (trailing slash)."""
        return f"{self.root}sessiond/index/sessions/"

    def index_segment(self, number: int) -> str:
        """One listing index segment; zero-padded so listing order is numeric."""
        return f"{self.index_prefix}seg_{number:010d}.json"

    @property
    def inbox(self) -> str:
        """The tenant's pending-review inbox."""
        return f"{self.root}sessiond/index/inbox.json"

    def tombstone(self, session_id: str) -> str:
        """Marks a deleted session, so a retried Delete is recognised."""
        return f"{self.root}sessiond/tombstones/{_checked(session_id)}.json"

    def export_prefix(self, name: str) -> str:
        """Where a bundle exported to the store goes (trailing slash)."""
        return f"{self.root}exports/{_checked(name)}/"


def parse_message_index(key: str) -> int | None:
    """Returns ``n`` for a key ending in ``message_<n>.json``, else None."""
    name = key.rsplit("/", 1)[-1]
    if not (name.startswith(MESSAGE_PREFIX) and name.endswith(".json")):
        return None
    digits = name[len(MESSAGE_PREFIX) : -len(".json")]
    return int(digits) if digits.isdigit() else None
