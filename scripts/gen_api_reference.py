#!/usr/bin/env python3
"""Generates docs/api-reference.md from the contract (protos/sessiond/v1/*.proto).

Every RPC, message, field, enum and enum value, with the comments written in
the protos. ``--check`` exits 1 when the committed reference is stale (CI).

    scripts/gen_api_reference.py [--check]

Needs grpcio-tools (the dev extra): the protos are compiled to descriptors with
source info by ``grpc_tools.protoc``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
OUTPUT = ROOT / "docs" / "api-reference.md"
PACKAGE = "sessiond.v1"

FieldType = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in FieldType.Type.items()
    if name not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")
}


def load(protos: Path) -> descriptor_pb2.FileDescriptorSet:
    """The contract's files as descriptors with comments."""
    files = sorted(str(path.relative_to(protos)) for path in protos.glob("sessiond/v1/*.proto"))
    include = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "contract.binpb"
        status = protoc.main(
            [
                "protoc",
                f"-I{protos}",
                f"-I{include}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *files,
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed ({status})")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


class Comments:
    """Leading comments of one file, by source path."""

    def __init__(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        self._by_path = {
            tuple(location.path): location.leading_comments
            for location in file.source_code_info.location
        }

    def get(self, *path: int) -> str:
        """The comment as Markdown paragraphs (one space stripped from each line)."""
        text = self._by_path.get(tuple(path), "")
        lines = [
            line[1:] if line.startswith(" ") else line for line in text.strip("\n").split("\n")
        ]
        return "\n".join(lines).strip()


def cell(text: str) -> str:
    """Text for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def short(name: str) -> str:
    """A type name without the leading dot and the package."""
    name = name.lstrip(".")
    return name.removeprefix(PACKAGE + ".")


def anchor(name: str) -> str:
    return short(name).replace(".", "-").lower()


def link(type_name: str) -> str:
    """A type as Markdown: a link for the contract's own types."""
    name = type_name.lstrip(".")
    if name.startswith(PACKAGE + "."):
        return f"[`{short(name)}`](#{anchor(name)})"
    return f"`{name}`"


def field_type(field: descriptor_pb2.FieldDescriptorProto, maps: dict[str, tuple[str, str]]) -> str:
    if field.type in (FieldType.TYPE_MESSAGE, FieldType.TYPE_ENUM):
        if field.type_name in maps:
            key, value = maps[field.type_name]
            return f"map<`{key}`, {value}>"
        rendered = link(field.type_name)
    else:
        rendered = f"`{SCALARS[field.type]}`"
    if field.label == FieldType.LABEL_REPEATED:
        return f"repeated {rendered}"
    return rendered


def map_entries(
    message: descriptor_pb2.DescriptorProto, scope: str, maps: dict[str, tuple[str, str]]
) -> None:
    for nested in message.nested_type:
        name = f"{scope}.{nested.name}"
        if nested.options.map_entry:
            key, value = nested.field[0], nested.field[1]
            value_type = (
                link(value.type_name)
                if value.type in (FieldType.TYPE_MESSAGE, FieldType.TYPE_ENUM)
                else f"`{SCALARS[value.type]}`"
            )
            maps[name] = (SCALARS[key.type], value_type)
        map_entries(nested, name, maps)


def render_message(
    message: descriptor_pb2.DescriptorProto,
    scope: str,
    path: tuple[int, ...],
    comments: Comments,
    maps: dict[str, tuple[str, str]],
    file_name: str,
) -> Iterable[str]:
    full = f"{scope}.{message.name}"
    yield f'<a id="{anchor(full)}"></a>'
    yield f"### `{short(full)}`"
    yield ""
    comment = comments.get(*path)
    if comment:
        yield comment
        yield ""
    if message.field:
        yield "| Field | No. | Type | Description |"
        yield "|---|---|---|---|"
        for index, field in enumerate(message.field):
            description = cell(comments.get(*path, 2, index))
            if field.HasField("oneof_index"):
                oneof = message.oneof_decl[field.oneof_index].name
                description = f"oneof `{oneof}`. {description}"
            yield (
                f"| `{field.name}` | {field.number} | {field_type(field, maps)} | {description} |"
            )
    else:
        yield "No fields."
    yield ""
    yield f"Defined in `{file_name}`."
    yield ""
    for index, nested in enumerate(message.nested_type):
        if not nested.options.map_entry:
            yield from render_message(nested, full, (*path, 3, index), comments, maps, file_name)
    for index, enum in enumerate(message.enum_type):
        yield from render_enum(enum, full, (*path, 4, index), comments, file_name)


def render_enum(
    enum: descriptor_pb2.EnumDescriptorProto,
    scope: str,
    path: tuple[int, ...],
    comments: Comments,
    file_name: str,
) -> Iterable[str]:
    full = f"{scope}.{enum.name}"
    yield f'<a id="{anchor(full)}"></a>'
    yield f"### `{short(full)}`"
    yield ""
    comment = comments.get(*path)
    if comment:
        yield comment
        yield ""
    yield "| Value | No. | Description |"
    yield "|---|---|---|"
    for index, value in enumerate(enum.value):
        yield f"| `{value.name}` | {value.number} | {cell(comments.get(*path, 2, index))} |"
    yield ""
    yield f"Defined in `{file_name}`."
    yield ""


def render(files: descriptor_pb2.FileDescriptorSet) -> str:
    contract = [file for file in files.file if file.package == PACKAGE]
    maps: dict[str, tuple[str, str]] = {}
    for file in contract:
        for message in file.message_type:
            map_entries(message, f".{PACKAGE}.{message.name}", maps)

    out = [
        f"# API reference: `{PACKAGE}`",
        "",
        "<!-- Generated from protos/sessiond/v1/*.proto by scripts/gen_api_reference.py;",
        "     do not edit. CI fails when it is stale: run the script after changing a proto. -->",
        "",
        "Every RPC, message and enum of the contract, with the comments of the protos.",
        "Conventions (errors, idempotency, paging, etags), every error reason and the",
        "status codes each RPC can return are in [api.md](api.md).",
        "",
    ]
    toc_services, toc_messages, toc_enums = [], [], []
    body_services: list[str] = []
    body_messages: list[str] = []
    body_enums: list[str] = []
    for file in contract:
        comments = Comments(file)
        for s_index, service in enumerate(file.service):
            full = f"{PACKAGE}.{service.name}"
            toc_services.append(f"- [`{full}`](#{anchor(full)})")
            body_services += [f'<a id="{anchor(full)}"></a>', f"## Service `{full}`", ""]
            body_services += [comments.get(6, s_index), ""]
            body_services += ["| RPC | Request | Response |", "|---|---|---|"]
            for method in service.method:
                request = ("stream " if method.client_streaming else "") + link(method.input_type)
                response = ("stream " if method.server_streaming else "") + link(method.output_type)
                body_services.append(
                    f"| [`{method.name}`](#{anchor(full + '.' + method.name)}) "
                    f"| {request} | {response} |"
                )
            body_services.append("")
            for m_index, method in enumerate(service.method):
                client = "stream " if method.client_streaming else ""
                server = "stream " if method.server_streaming else ""
                body_services += [
                    f'<a id="{anchor(full + "." + method.name)}"></a>',
                    f"### `{method.name}`",
                    "",
                    "```proto",
                    f"rpc {method.name}({client}{short(method.input_type)}) "
                    f"returns ({server}{short(method.output_type)});",
                    "```",
                    "",
                    comments.get(6, s_index, 2, m_index),
                    "",
                    f"Request {link(method.input_type)}, response {link(method.output_type)}. "
                    f"Status codes: [api.md](api.md#rpc-{method.name.lower()}).",
                    "",
                ]
        for index, message in enumerate(file.message_type):
            name = f"{PACKAGE}.{message.name}"
            toc_messages.append(f"[`{message.name}`](#{anchor(name)})")
            body_messages += render_message(message, PACKAGE, (4, index), comments, maps, file.name)
        for index, enum in enumerate(file.enum_type):
            name = f"{PACKAGE}.{enum.name}"
            toc_enums.append(f"[`{enum.name}`](#{anchor(name)})")
            body_enums += render_enum(enum, PACKAGE, (5, index), comments, file.name)

    out += ["## Contents", "", "Services:", "", *toc_services, ""]
    out += ["Messages: " + ", ".join(toc_messages), ""]
    out += ["Enums: " + ", ".join(toc_enums), ""]
    out += body_services
    out += ["## Messages", "", *body_messages]
    out += ["## Enums", "", *body_enums]
    text = "\n".join(out)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the reference is stale")
    parser.add_argument("--protos", type=Path, default=PROTOS, help="the proto root")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the Markdown file")
    args = parser.parse_args(argv)
    text = render(load(args.protos))
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(True), text.splitlines(True), str(args.output), "generated"
                )
            )
            print(f"{args.output} is stale: run scripts/gen_api_reference.py", file=sys.stderr)
            return 1
        print(f"{args.output.relative_to(ROOT)} is up to date")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
