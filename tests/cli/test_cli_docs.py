"""docs/cli.md documents every command and flag the ``sessiond`` parser has.

The ``serve`` table must list exactly the server's settings (flag, variable);
every other subcommand must be documented with each of its long options, so
the reference cannot fall behind the code.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sessiond.client.cli import build_parser
from sessiond.server.ops.settings import Settings

DOC = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def section(command: str) -> str:
    """The ``### `sessiond <command> ...``` section(s) whose heading names the command."""
    parts = re.split(r"^### ", DOC, flags=re.M)[1:]
    found = [p for p in parts if re.search(rf"`sessiond {command}[ `]", p.split("\n", 1)[0])]
    assert found, f"no section for sessiond {command}"
    return "\n".join(found)


def test_serve_table_lists_exactly_the_settings() -> None:
    rows = re.findall(r"^\| `(--[a-z0-9-]+)` \| `(SESSIOND_[A-Z0-9_]+)` \|", section("serve"), re.M)
    expected = [
        (f"--{n.replace('_', '-')}", f"SESSIOND_{n.upper()}") for n in Settings.model_fields
    ]
    assert rows == expected


def test_every_subcommand_and_long_option_is_documented() -> None:
    commands = subcommands()
    shared = {"--help"}
    for name, parser in commands.items():
        if name == "serve":
            continue
        text = section(name)
        options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        # Connection and output options are documented once, for every command.
        common = {o for o in options if o in DOC.split("## Exit codes")[0]}
        missing = sorted(o for o in options - shared - common if o not in text)
        assert not missing, f"sessiond {name}: undocumented {missing}"
