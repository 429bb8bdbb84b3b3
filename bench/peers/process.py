"""A peer's process group: started in its own session, always stopped whole, orphans reported.

vLLM spawns an engine-core process and a worker of several GB; stopping only the parent can
leave them busy, so every stop signals the whole group and then checks each known descendant.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import psutil

DEFAULT_PEER_PYTHON = Path("build/peers/vllm-venv/bin/python")
STOP_GRACE_SECONDS = 30.0
MARKER = "SESERAGI_BENCH_PEER"
# Quiet, pinned to this machine's two cores, a bounded KV cache, and the dev endpoints that reset
# the prefix cache between scenarios (so one scenario's prompts are not cached for the next).
PEER_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "2",
    "VLLM_CPU_OMP_THREADS_BIND": "0-1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_SERVER_DEV_MODE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    MARKER: "1",  # inherited by every descendant, however it renames itself
}


class PeerProcess:
    """`command` in a new session; leaving the block stops the group and kills what survives."""

    def __init__(self, command: Sequence[str], log_path: Path, cwd: Path | None = None) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._known: dict[int, psutil.Process] = {}
        self.orphans: list[int] = []

    def __enter__(self) -> PeerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command,
            env={**os.environ, **PEER_ENV},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.cwd,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the peer is not running")
        return self.process.pid

    def remember_children(self, pid: int | None = None) -> None:
        """Note the current descendants, so a stop can check them even after they are reparented."""
        try:
            for child in psutil.Process(self.pid if pid is None else pid).children(recursive=True):
                self._known[child.pid] = child
        except psutil.Error:
            pass

    def wait(self, timeout: float) -> int:
        """Wait for the peer to exit by itself, noting its children meanwhile; the exit code."""
        if self.process is None:
            raise RuntimeError("the peer is not running")
        deadline = time.monotonic() + timeout
        while (code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.command[:3]} did not finish in {timeout:.0f} s")
            self.remember_children()
            time.sleep(0.5)
        return code

    def stop(self) -> None:
        """SIGTERM to the group, then SIGKILL; any descendant still alive is killed and reported."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                self.remember_children(process.pid)
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait()
            _signal_group(process.pid, signal.SIGKILL)  # whatever of the group is left
            self.orphans = kill_survivors(list(self._known.values()))
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def kill_survivors(processes: Sequence[psutil.Process], grace: float = 5.0) -> list[int]:
    """Kill every process still alive after `grace` seconds (same pid and start time); their pids.

    The grace lets processes that were just signalled finish dying before they count as orphans.
    """
    _, alive = psutil.wait_procs([p for p in processes if _alive(p)], timeout=grace)
    alive = [p for p in alive if _alive(p)]
    for survivor in alive:
        with contextlib.suppress(psutil.Error):
            survivor.kill()
    psutil.wait_procs(alive, timeout=10)
    return [p.pid for p in alive]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stray_peers() -> list[int]:
    """Pids of live processes started as peers (none should outlive a stop)."""
    found: list[int] = []
    for process in psutil.process_iter(["pid"]):
        try:
            if MARKER in process.environ() and _alive(process):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def kill_peer_strays() -> list[int]:
    """Kill any process still carrying the peer marker; their pids (empty after a clean stop)."""
    strays: list[psutil.Process] = []
    for pid in stray_peers():
        try:
            strays.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return kill_survivors(strays)
