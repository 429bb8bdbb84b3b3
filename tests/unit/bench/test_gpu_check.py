"""bench/gpu_check.sh refuses a machine without a GPU before it sets anything up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT

pytestmark = pytest.mark.unit
SCRIPT = REPO_ROOT / "bench" / "gpu_check.sh"
BASH = "/bin/bash"


def run_script(*args: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT), *args],
        env={"PATH": path},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_without_nvidia_smi_it_exits_2_and_says_why(tmp_path: Path) -> None:
    """An empty PATH lacks nvidia-smi on any machine, GPU or not; nothing else may run first."""
    result = run_script(path=str(tmp_path))
    assert result.returncode == 2
    assert "no GPU here (nvidia-smi is not on PATH)" in result.stderr
    assert "--cpu-smoke" in result.stderr
    assert result.stdout == ""


def test_an_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    result = run_script("--fast", path=str(tmp_path))
    assert result.returncode == 64
    assert result.stderr.startswith("usage: bench/gpu_check.sh [--cpu-smoke]")
