"""docs/structured-output.md's example prints what the page shows, against a real replica."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import python_examples
from tests.servers import ServerThread

pytestmark = pytest.mark.e2e
README_ADDRESS = "127.0.0.1:8000"


def test_the_structured_output_example_prints_what_the_page_shows(server: ServerThread) -> None:
    (example, printed), *_ = [
        (code, out)
        for code, out in python_examples("docs/structured-output.md")
        if "tool_choice" in code
    ]
    assert server.running is not None and server.running.http is not None
    script = example.replace(README_ADDRESS, f"127.0.0.1:{server.running.http.port}")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed  # greedy, so the very text the page shows
