"""Start the engine core process, hold its two ZeroMQ sockets, and notice the moment it exits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

import zmq
import zmq.asyncio

from seseragi.engine import ipc
from seseragi.model.loader import ModelInfo
from seseragi.settings import WorkerSettings


class CoreStartFailed(RuntimeError):
    """The engine core exited, or reported an error, before it was ready."""


def describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class CoreProcess:
    """The child process and its two sockets; `exited` resolves when the process ends.

    `start` it, then wrap it in a `CoreClient` (split so a front end can load its tokenizer while
    the core loads the model).
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        context: zmq.asyncio.Context,
        commands: zmq.asyncio.Socket,
        events: zmq.asyncio.Socket,
        workdir: str,
    ) -> None:
        self.process = process
        self.context = context
        self.events = events
        self.commands = commands  # owns the socket the sync view below sends on
        self.workdir = workdir
        # Sync views of the same sockets: a send is never awaited, a drain never waits.
        self._commands: zmq.Socket[bytes] = zmq.Socket.shadow(commands.underlying)
        self._events_sync: zmq.Socket[bytes] = zmq.Socket.shadow(events.underlying)
        self.exited = _exit_future(process.pid)
        self.info: ModelInfo

    @classmethod
    async def start(cls, settings: WorkerSettings) -> CoreProcess:
        workdir = tempfile.mkdtemp(prefix="seseragi-core-")
        context = zmq.asyncio.Context()
        commands = context.socket(zmq.PUSH)
        commands.setsockopt(zmq.SNDHWM, 0)
        commands.bind(f"ipc://{workdir}/commands")
        events = context.socket(zmq.PULL)
        events.setsockopt(zmq.RCVHWM, 0)
        events.bind(f"ipc://{workdir}/events")
        argv = [sys.executable, "-m", "seseragi.engine.core_process"]
        argv += ["--commands", f"ipc://{workdir}/commands", "--events", f"ipc://{workdir}/events"]
        # Started from the event loop's thread: PR_SET_PDEATHSIG follows the thread that forks.
        process = subprocess.Popen([*argv, "--parent", str(os.getpid())], stdin=subprocess.PIPE)
        core = cls(process, context, commands, events, workdir)
        try:
            assert process.stdin is not None
            process.stdin.write(settings.model_dump_json().encode())
            process.stdin.close()
            core.info = await core._wait_until_ready()
        except BaseException:
            process.kill()
            await asyncio.shield(core.exited)
            core.close()
            raise
        return core

    async def _wait_until_ready(self) -> ModelInfo:
        first: asyncio.Future[bytes] = asyncio.ensure_future(self.events.recv())
        waits: set[asyncio.Future[Any]] = {first, self.exited}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not first.done():
            first.cancel()
            code = describe_exit(self.process.wait())
            raise CoreStartFailed(f"the engine core exited before it was ready ({code})")
        message = ipc.decode(first.result())
        if message[0] == ipc.FATAL:
            raise CoreStartFailed(f"the engine core could not start: {message[1]}")
        return ipc.info_from_wire(message[1])

    def send(self, data: bytes) -> None:
        """Queue a command without waiting; a core that is gone is noticed by its exit."""
        with contextlib.suppress(zmq.Again):
            self._commands.send(data, zmq.NOBLOCK)

    def pending_events(self) -> list[bytes]:
        messages = []
        with contextlib.suppress(zmq.Again):
            while True:
                messages.append(self._events_sync.recv(zmq.NOBLOCK))
        return messages

    def close(self) -> None:
        if self.exited.done():
            self.process.wait()  # reap it: it has exited, this returns at once
        self.exited.cancel()
        self.context.destroy(linger=0)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _exit_future(pid: int) -> asyncio.Future[None]:
    """Resolves when process `pid` exits: its pidfd turns readable (Linux 5.3+)."""
    loop = asyncio.get_running_loop()
    fd = os.pidfd_open(pid)
    exited: asyncio.Future[None] = loop.create_future()

    open_fd = [fd]

    def release(_: object = None) -> None:
        if open_fd:
            loop.remove_reader(open_fd.pop())
            os.close(fd)

    def on_exit() -> None:
        release()
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, on_exit)
    exited.add_done_callback(release)
    return exited
