"""`make run`'s stack as a user runs it: the printed command and chat page work, and Ctrl-C
cuts no stream."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from seseragi.config import Settings
from tests.edges import free_port
from tests.helpers import stream_through_a_stop
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str], str]]:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(Settings().cache_dir / "models")  # the model, read only
    port = free_port()
    env = {
        **os.environ,
        "SESERAGI_CACHE_DIR": str(cache),
        "SESERAGI_PORT": str(free_port()),
        "SESERAGI_HTTP_PORT": str(free_port()),
        "SESERAGI_EDGE_PORT": str(port),
        "SESERAGI_EDGE_ADMIN_PORT": str(free_port()),
        "SESERAGI_WEB_PORT": str(free_port()),
        "SESERAGI_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "seseragi.cli", "stack"],
        cwd=REPO_ROOT,  # as `make run`: the built page is clients/web/dist from here
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    try:
        yield process, lines, f"127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def printed_token(lines: queue.Queue[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    previous = ""
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.1)).strip()
        if previous.startswith("token ("):
            return line
        previous = line
    pytest.fail("the stack printed no token")


def printed_openai_snippet(lines: queue.Queue[str], timeout_s: float) -> str:
    """The Python printed under "OpenAI API", up to the blank line that ends it."""
    deadline = time.monotonic() + timeout_s
    snippet: list[str] | None = None
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.1)).rstrip("\n")
        if line.startswith("OpenAI API"):
            snippet = []
        elif snippet is not None and not line.strip():
            return "\n".join(snippet)
        elif snippet is not None:
            snippet.append(line)
    pytest.fail("the stack printed no openai snippet")


def printed_page_url(lines: queue.Queue[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.1)).strip()
        if line.startswith("http://127.0.0.1:") and "#edge=" in line:
            return line
    pytest.fail("the stack printed no chat page URL")


def test_stopping_the_stack_finishes_streams_in_flight(
    stack: tuple[subprocess.Popen[str], queue.Queue[str], str],
) -> None:
    process, lines, target = stack
    token = printed_token(lines, timeout_s=300)
    snippet = printed_openai_snippet(lines, timeout_s=30)
    page = printed_page_url(lines, timeout_s=30)
    answer = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300, check=False
    )
    assert answer.returncode == 0, answer.stderr
    assert "Paris" in answer.stdout
    assert page.endswith(f"&token={token}")
    with urllib.request.urlopen(page.partition("#")[0], timeout=30) as reply:
        assert "<title>Seseragi chat</title>" in reply.read().decode()
    stream_through_a_stop(target, token, lambda: process.send_signal(signal.SIGINT))
    assert process.wait(120) == 0
