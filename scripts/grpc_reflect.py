#!/usr/bin/env python3
"""A generic, reflection-driven gRPC client (a small grpcurl), for any server.

It knows no service ahead of time: everything comes from the server's
reflection service (``grpc.reflection.v1alpha``) and requests and responses
are JSON (the proto3 JSON mapping).

    scripts/grpc_reflect.py TARGET list
    scripts/grpc_reflect.py TARGET describe SYMBOL
    scripts/grpc_reflect.py TARGET call SERVICE/METHOD [JSON]

``list`` prints the services, ``describe`` a service, method, message or enum
in proto syntax, ``call`` makes a unary or server-streaming call and prints
each response as JSON. A failed call prints its status code, message and any
``google.rpc.ErrorInfo`` details to stderr and exits with 1.

Examples against sessiond::

    scripts/grpc_reflect.py 127.0.0.1:50051 describe sessiond.v1.SessionService
    scripts/grpc_reflect.py 127.0.0.1:50051 call sessiond.v1.SessionService/Get \\
        '{"sessionId": "trip"}'
    scripts/grpc_reflect.py 127.0.0.1:50051 call grpc.health.v1.Health/Check \\
        '{"service": "sessiond.v1.SessionService"}'
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pool, json_format, message_factory
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status


def _type_name(field: descriptor.FieldDescriptor) -> str:
    if field.message_type is not None:
        return field.message_type.full_name
    if field.enum_type is not None:
        return field.enum_type.full_name
    names = {
        value: name.removeprefix("TYPE_").lower()
        for name, value in vars(descriptor.FieldDescriptor).items()
        if name.startswith("TYPE_")
    }
    return names[field.type]


def _describe_field(field: descriptor.FieldDescriptor) -> str:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        key, value = message.fields_by_name["key"], message.fields_by_name["value"]
        return f"map<{_type_name(key)}, {_type_name(value)}> {field.name} = {field.number};"
    label = "repeated " if field.is_repeated else ""
    return f"{label}{_type_name(field)} {field.name} = {field.number};"


def _describe_method(method: descriptor.MethodDescriptor) -> str:
    client = "stream " if _streaming(method)[0] else ""
    server = "stream " if _streaming(method)[1] else ""
    return (
        f"rpc {method.name}({client}{method.input_type.full_name}) "
        f"returns ({server}{method.output_type.full_name});"
    )


def _streaming(method: descriptor.MethodDescriptor) -> tuple[bool, bool]:
    # MethodDescriptor exposes client_streaming / server_streaming (protobuf >= 4).
    return bool(method.client_streaming), bool(method.server_streaming)


def _describe_message(message: descriptor.Descriptor, indent: str = "") -> list[str]:
    lines = [f"{indent}message {message.name} {{"]
    done: set[str] = set()
    for field in message.fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof.name not in done:
            done.add(oneof.name)
            lines.append(f"{indent}  oneof {oneof.name} {{")
            lines.extend(f"{indent}    {_describe_field(member)}" for member in oneof.fields)
            lines.append(f"{indent}  }}")
        elif oneof is None:
            lines.append(f"{indent}  {_describe_field(field)}")
    for nested in message.nested_types:
        if not nested.GetOptions().map_entry:
            lines.extend(_describe_message(nested, indent + "  "))
    for enum in message.enum_types:
        lines.extend(_describe_enum(enum, indent + "  "))
    lines.append(f"{indent}}}")
    return lines


def _describe_enum(enum: descriptor.EnumDescriptor, indent: str = "") -> list[str]:
    lines = [f"{indent}enum {enum.name} {{"]
    lines.extend(f"{indent}  {value.name} = {value.number};" for value in enum.values)
    lines.append(f"{indent}}}")
    return lines


def _find_method(pool: descriptor_pool.DescriptorPool, name: str) -> descriptor.MethodDescriptor:
    # A pool backed by a reflection database loads files by service or message
    # name, not by method name: look the method up through its service.
    service, _, method = name.rpartition(".")
    if not service:
        raise KeyError(name)
    found = pool.FindServiceByName(service).methods_by_name.get(method)
    if found is None:
        raise KeyError(name)
    return found


def describe(pool: descriptor_pool.DescriptorPool, symbol: str) -> str:
    """A service, method, message or enum in proto syntax."""
    finders = [
        ("service", pool.FindServiceByName),
        ("method", lambda name: _find_method(pool, name)),
        ("message", pool.FindMessageTypeByName),
        ("enum", pool.FindEnumTypeByName),
    ]
    for kind, find in finders:
        try:
            found = find(symbol)
        except KeyError:
            continue
        if kind == "service":
            lines = [f"{found.full_name} is a service:", f"service {found.name} {{"]
            lines.extend(f"  {_describe_method(method)}" for method in found.methods)
            lines.append("}")
        elif kind == "method":
            lines = [f"{found.full_name} is a method:", _describe_method(found)]
        elif kind == "message":
            lines = [f"{found.full_name} is a message:", *_describe_message(found)]
        else:
            lines = [f"{found.full_name} is an enum:", *_describe_enum(found)]
        return "\n".join(lines)
    raise KeyError(f"symbol not found: {symbol}")


def _print_error(error: grpc.RpcError) -> None:
    print(f"ERROR: {error.code().name}: {error.details()}", file=sys.stderr)  # type: ignore[attr-defined]
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:
        status = None
    for detail in status.details if status is not None else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
            print(f"  {detail.type_url}: {json_format.MessageToJson(info)}", file=sys.stderr)
        else:
            print(f"  {detail.type_url}", file=sys.stderr)


def call(
    channel: grpc.Channel,
    pool: descriptor_pool.DescriptorPool,
    name: str,
    request_json: str,
    timeout: float,
) -> list[dict[str, Any]]:
    """Calls a unary or server-streaming method with a JSON request; the JSON responses."""
    service_name, _, method_name = name.rpartition("/")
    method = pool.FindServiceByName(service_name).methods_by_name[method_name]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    request = json_format.Parse(request_json or "{}", request_class())
    path = f"/{service_name}/{method_name}"
    client_streaming, server_streaming = _streaming(method)
    if client_streaming:
        raise ValueError(f"{name} takes a request stream: not supported by this tool")
    options = {
        "request_serializer": request_class.SerializeToString,
        "response_deserializer": response_class.FromString,
    }
    if server_streaming:
        responses = list(channel.unary_stream(path, **options)(request, timeout=timeout))
    else:
        responses = [channel.unary_unary(path, **options)(request, timeout=timeout)]
    return [json_format.MessageToDict(response) for response in responses]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="host:port of the server")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of each call (s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the services")
    describe_parser = sub.add_parser("describe", help="describe a symbol")
    describe_parser.add_argument("symbol")
    call_parser = sub.add_parser("call", help="call SERVICE/METHOD with a JSON request")
    call_parser.add_argument("method")
    call_parser.add_argument("json", nargs="?", default="{}")
    args = parser.parse_args(argv)

    with grpc.insecure_channel(args.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        try:
            if args.command == "list":
                for service in sorted(database.get_services()):
                    print(service)
            elif args.command == "describe":
                print(describe(pool, args.symbol))
            else:
                for response in call(channel, pool, args.method, args.json, args.timeout):
                    print(json.dumps(response, indent=2, ensure_ascii=False))
        except grpc.RpcError as error:
            _print_error(error)
            return 1
        except KeyError as error:
            print(f"ERROR: {error.args[0]}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
