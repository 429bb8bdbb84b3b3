"""The Node (@grpc/grpc-js) and Go examples stream a generation through a real Envoy.

Each runs exactly as its README shows (a token in SESERAGI_TOKEN, the prompt as the argument);
the text must arrive in pieces while it is generated and equal a direct greedy call's.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from seseragi.api.identity import SECRET_HEADER
from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2_grpc
from tests import clients
from tests.edges import EnvoyProcess, edge_settings
from tests.helpers import chat
from tests.servers import ServerThread, make_settings

pytestmark = pytest.mark.e2e
SECRET = "test-edge-secret"
QUESTION = "Name three rivers."
MAX_TOKENS = 24


def node_command(addr: str) -> list[str]:
    return [clients.node(), str(clients.NODE_EXAMPLE), "--addr", addr, "--max-tokens", "24"]


def go_command(addr: str) -> list[str]:
    binary = clients.built(clients.GO_EXAMPLE, "clients-go")
    return [str(binary), "-addr", addr, "-max-tokens", "24"]


LANGUAGES: dict[str, Callable[[str], list[str]]] = {"node": node_command, "go": go_command}


@pytest.fixture(scope="module")
def server(loaded_model: LoadedModel) -> Iterator[ServerThread]:
    with ServerThread(make_settings(edge_secret=SECRET), loaded_model) as running:
        yield running


@pytest.fixture(scope="module")
def envoy(server: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("language-clients")
    with EnvoyProcess(edge_settings(tmp, [server.target]), tmp / "envoy") as running:
        yield running


@pytest.fixture(scope="module")
def greedy_text(server: ServerThread) -> str:
    with grpc.insecure_channel(server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = chat(QUESTION, max_new_tokens=MAX_TOKENS)
        reply = stub.Generate(request, metadata=[(SECRET_HEADER, SECRET)], timeout=120)
    text: str = reply.text
    return text


def run_streaming(command: list[str], token: str) -> tuple[list[float], str, str, int]:
    """Run `command`, noting when each piece of stdout arrives (bounded by a timeout)."""
    env = {**os.environ, "SESERAGI_TOKEN": token}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        arrivals: list[float] = []
        out = b""
        deadline = time.monotonic() + 180
        while (chunk := os.read(process.stdout.fileno(), 65536)) and time.monotonic() < deadline:
            arrivals.append(time.monotonic())
            out += chunk
        code = process.wait(timeout=30)
        err = process.stderr.read().decode()
    return arrivals, out.decode(), err, code


@pytest.mark.parametrize("language", LANGUAGES)
def test_example_streams_the_greedy_text_through_envoy(
    language: str, envoy: EnvoyProcess, greedy_text: str
) -> None:
    token = tokens.mint(envoy.settings, f"{language}-example", 600)
    arrivals, out, err, code = run_streaming([*LANGUAGES[language](envoy.target), QUESTION], token)
    assert code == 0, err
    text, _, summary = out.rpartition("\n[")
    assert text == greedy_text
    assert summary.startswith("MAX_TOKENS, ") and summary.endswith(
        f" {MAX_TOKENS} output tokens]\n"
    )
    assert len(arrivals) >= 3 and arrivals[-1] - arrivals[0] > 50e-3  # printed as it came


@pytest.mark.parametrize("language", LANGUAGES)
def test_example_reports_a_refused_token(language: str, envoy: EnvoyProcess) -> None:
    _, out, err, code = run_streaming([*LANGUAGES[language](envoy.target), QUESTION], "bad")
    assert code == 1 and out == ""
    assert "unauthenticated" in err.lower()
