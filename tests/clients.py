"""The non-Python clients the tests run: built by `make web` and `make clients-go` (which
`make test` runs first), so a missing build fails here with the command that makes it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.servers import REPO_ROOT

WEB = REPO_ROOT / "clients" / "web"
GRPC_WEB_SCRIPT = WEB / "dist" / "node" / "grpc-web-stream.mjs"
PAGE_DRIVER = WEB / "test" / "page.mjs"
NODE_EXAMPLE = REPO_ROOT / "clients" / "node" / "stream.mjs"
GO_EXAMPLE = REPO_ROOT / "build" / "bin" / "seseragi-stream"


def built(path: Path, make_target: str) -> Path:
    assert path.exists(), f"{path.relative_to(REPO_ROOT)} is missing: run `make {make_target}`"
    return path


def node() -> str:
    found = shutil.which("node")
    assert found is not None, "no node on PATH: run `make clients-deps`"
    return found


def run(args: list[str], timeout_s: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **env}
    )
