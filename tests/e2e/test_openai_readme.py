"""The OpenAI API examples run as printed against a real replica: the SDK one on the README's
front page, the curl one in docs/api.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.helpers import python_examples
from tests.servers import REPO_ROOT, ServerThread

pytestmark = pytest.mark.e2e
README_ADDRESS = "127.0.0.1:8000"


def address(server: ServerThread) -> str:
    assert server.running is not None and server.running.http is not None
    return f"127.0.0.1:{server.running.http.port}"


def test_the_sdk_example_prints_what_the_readme_shows(server: ServerThread) -> None:
    (example, printed), *_ = [
        (code, out) for code, out in python_examples("README.md") if "from openai import" in code
    ]
    script = example.replace(README_ADDRESS, address(server))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed  # greedy, so the very text the README shows


def events(text: str) -> list[object]:
    """The SSE data lines, without what differs per call (id, created) or keep-alive comments."""
    found: list[object] = []
    for line in text.splitlines():
        if not line.startswith("data: "):
            continue
        payload = line.removeprefix("data: ")
        if payload == "[DONE]":
            found.append(payload)
            continue
        obj = json.loads(payload)
        obj.pop("id")
        obj.pop("created")
        found.append(obj)
    return found


def test_the_curl_example_streams_what_the_api_page_shows(server: ServerThread) -> None:
    page = (REPO_ROOT / "docs" / "api.md").read_text()
    match = re.search(
        r"^\$ (curl -sN 127\.0\.0\.1:8000/v1/.*?)\n(data: .*?\[DONE\])$", page, re.M | re.S
    )
    assert match is not None
    command = match.group(1).replace("\\\n    ", "").replace(README_ADDRESS, address(server))
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert events(result.stdout) == events(match.group(2))
