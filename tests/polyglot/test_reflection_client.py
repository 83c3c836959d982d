"""Generic gRPC tools work with sessiond: reflection and health per service name.

``scripts/grpc_reflect.py`` is a reflection-driven client (a small grpcurl):
it knows no service ahead of time, builds message classes from the
descriptors the server's reflection service returns, and speaks JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from polyglot.helpers import ROOT, ServerProcess

TOOL = ROOT / "scripts" / "grpc_reflect.py"


def reflect(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), target, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_list_services(sessiond_server: ServerProcess) -> None:
    done = reflect(sessiond_server.target, "list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "sessiond.v1.SessionService",
    ]


def test_describe_the_service_and_its_messages(sessiond_server: ServerProcess) -> None:
    done = reflect(sessiond_server.target, "describe", "sessiond.v1.SessionService")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "rpc Get(sessiond.v1.GetRequest) returns (sessiond.v1.GetResponse);" in text
    run = "rpc Run(stream sessiond.v1.RunRequest) returns (stream sessiond.v1.RunResponse);"
    export = "rpc Export(sessiond.v1.ExportRequest) returns (stream sessiond.v1.ExportResponse);"
    assert run in text and export in text
    assert len([line for line in text.splitlines() if line.strip().startswith("rpc ")]) >= 15

    done = reflect(sessiond_server.target, "describe", "sessiond.v1.Session")
    assert "map<string, string> labels = 4;" in done.stdout
    assert "sessiond.v1.Lease lease = 15;" in done.stdout
    done = reflect(sessiond_server.target, "describe", "sessiond.v1.RunRequest")
    assert "oneof action {" in done.stdout
    done = reflect(sessiond_server.target, "describe", "sessiond.v1.SessionService.Chat")
    assert "rpc Chat(sessiond.v1.ChatRequest) returns (sessiond.v1.ChatResponse);" in done.stdout


def test_call_with_json(sessiond_server: ServerProcess) -> None:
    target = sessiond_server.target
    session_id = f"refl-{uuid.uuid4().hex[:8]}"
    started = reflect(
        target,
        "call",
        "sessiond.v1.SessionService/Start",
        json.dumps({"sessionId": session_id, "title": "from JSON", "labels": {"via": "grpc"}}),
    )
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["created"] is True
    chat = reflect(
        target,
        "call",
        "sessiond.v1.SessionService/Chat",
        json.dumps({"sessionId": session_id, "text": "hi"}),
    )
    assert json.loads(chat.stdout)["text"] == "echo: hi"

    got = reflect(
        target, "call", "sessiond.v1.SessionService/Get", json.dumps({"sessionId": session_id})
    )
    assert got.returncode == 0, got.stderr
    session = json.loads(got.stdout)["session"]
    assert session["sessionId"] == session_id
    assert session["title"] == "from JSON" and session["labels"] == {"via": "grpc"}
    assert session["status"] == "SESSION_STATUS_FINISHED"
    assert session["messageCount"] == "2"  # int64 as a JSON string

    missing = reflect(
        target, "call", "sessiond.v1.SessionService/Get", json.dumps({"sessionId": "nope-x"})
    )
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr and '"reason": "SESSION_NOT_FOUND"' in missing.stderr


def test_health_answers_per_service_name(sessiond_server: ServerProcess) -> None:
    for service in ("", "sessiond.v1.SessionService"):
        done = reflect(
            sessiond_server.target,
            "call",
            "grpc.health.v1.Health/Check",
            json.dumps({"service": service}),
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"status": "SERVING"}
    unknown = reflect(
        sessiond_server.target,
        "call",
        "grpc.health.v1.Health/Check",
        json.dumps({"service": "no.such.Service"}),
    )
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
