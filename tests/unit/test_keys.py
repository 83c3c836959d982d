"""Storage keys: one function per key, under the tenant prefix (``--tenant-prefix``)."""

from __future__ import annotations

import re

import pytest

from sessiond.server.domain.keys import TenantKeys, check_tenant_prefix


@pytest.mark.parametrize(
    ("template", "multi", "problem"),
    [
        ("tenants/{tenant}", False, "ending with '/'"),
        ("/abs/{tenant}/", False, "ending with '/'"),
        ("a/../{tenant}/", False, "ending with '/'"),
        ("{tenant}/{tenant}/", False, "at most once"),
        ("", True, "needs its own prefix"),
        ("shared/", True, "needs its own prefix"),
    ],
)
def test_bad_tenant_prefixes_are_refused(template: str, multi: bool, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_tenant_prefix(template, multi_tenant=multi)


def test_tenant_prefixes_place_every_key() -> None:
    for template in ("", "app/", "tenants/{tenant}/", "org/{tenant}/sessions/"):
        assert check_tenant_prefix(template, multi_tenant="{tenant}" in template) == template
    assert TenantKeys("acme", "").session_json("s") == "session_s/session.json"
    assert TenantKeys("acme", "app/").inbox == "app/sessiond/index/inbox.json"
    keys = TenantKeys("acme", "org/{tenant}/sessions/")
    assert (
        keys.message("s", "a", 3)
        == "org/acme/sessions/session_s/agents/agent_a/messages/message_3.json"
    )
