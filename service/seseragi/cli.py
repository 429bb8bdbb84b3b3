"""The `seseragi` command: serve, generate, model pull, info, health."""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf import json_format

from seseragi.settings import DEFAULT_MODEL, ServeSettings, Settings, WorkerSettings
from seseragi.settings.flags import add_flags

if TYPE_CHECKING:
    from seseragi_client import Client


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seseragi", description="Serve and call a streaming LLM over gRPC."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {metadata.version('seseragi')}"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the gRPC server (settings from flags, then SESERAGI_* variables)",
        description="Run the gRPC server and the OpenAI HTTP API. Every setting is a flag or a"
        " SESERAGI_* variable; a flag wins.",
    )
    serve.set_defaults(handler=_serve, flags=add_flags(serve, ServeSettings))

    worker = commands.add_parser(
        "worker",
        help="run queued jobs without serving calls (settings from flags, then SESERAGI_*)",
        description="Run queued jobs without serving calls. Every setting is a flag or a"
        " SESERAGI_* variable; a flag wins.",
    )
    worker.set_defaults(handler=_worker, flags=add_flags(worker, WorkerSettings))

    generate = commands.add_parser("generate", help="generate text through a running server")
    generate.add_argument("prompt")
    generate.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    generate.add_argument(
        "--chat", action="store_true", help="send the prompt as a user chat message"
    )
    generate.add_argument("--seed", type=int)
    generate.add_argument("--temperature", type=float)
    generate.add_argument("--max-new-tokens", type=int)
    generate.add_argument(
        "--stop", action="append", default=[], help="a stop sequence (repeatable)"
    )
    generate.add_argument(
        "--target", default=None, help="server address (default: SESERAGI_HOST:PORT)"
    )
    _add_connection_options(generate)
    generate.set_defaults(handler=_generate)

    info = commands.add_parser(
        "info", help="print the served model and the server's limits as JSON"
    )
    info.add_argument("--target", default=None)
    _add_connection_options(info)
    info.set_defaults(handler=_info)

    health = commands.add_parser(
        "health",
        help="ask the gRPC health service; exit 0 only when SERVING (container health checks)",
    )
    health.add_argument(
        "--target", default=None, help="server address (default: SESERAGI_HOST:PORT on loopback)"
    )
    health.add_argument(
        "--service",
        default="",
        help='service name to check; "" (default) is liveness, '
        "seseragi.v1.GenerationService is readiness",
    )
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    health.set_defaults(handler=_health)
    _add_edge_commands(commands)

    model = commands.add_parser("model", help="manage the model")
    model_commands = model.add_subparsers(required=True, metavar="ACTION")
    pull = model_commands.add_parser("pull", help="install and convert the configured model once")
    pull.set_defaults(handler=_pull)
    return parser


def _add_connection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--token", default=None, help="bearer token for Envoy (`seseragi token` mints one)"
    )
    command.add_argument(
        "--tls", action="store_true", help="connect with TLS (the system's root certificates)"
    )


def _add_edge_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token", help="mint a development token (local HS256 key)")
    token.add_argument("--sub", required=True, help="the subject (caller) the token names")
    token.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 7d (default 1h)")
    token.add_argument(
        "--alg",
        choices=["HS256", "ES256"],
        default="HS256",
        help="HS256: a local run; ES256: compose/k8s, whose JWKS `seseragi envoy jwks` writes",
    )
    token.set_defaults(handler=_token)

    envoy = commands.add_parser("envoy", help="Envoy's configuration")
    envoy_commands = envoy.add_subparsers(required=True, metavar="ACTION")
    render = envoy_commands.add_parser(
        "render", help="write envoy.yaml and the descriptor set from SESERAGI_EDGE_* settings"
    )
    render.add_argument("--out", type=Path, help="output directory (a local run)")
    render.add_argument(
        "--listen", default="127.0.0.1", help="listener address (0.0.0.0 in a container)"
    )
    render.add_argument(
        "--target",
        choices=["compose", "k8s", "sidecar"],
        action="append",
        help="instead: write the committed config and rate-limit rules of a deployment",
    )
    render.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="with --target: the repository checkout to write into (default: this directory)",
    )
    render.set_defaults(handler=_render)

    jwks = envoy_commands.add_parser(
        "jwks", help="write the JWKS (public key) that verifies `seseragi token --alg ES256`"
    )
    jwks.add_argument("--out", type=Path, required=True, help="the JWKS file to write")
    jwks.set_defaults(handler=_jwks)

    cert = envoy_commands.add_parser(
        "cert", help="write a development CA and the TLS certificate and key Envoy presents"
    )
    cert.add_argument("--out", type=Path, required=True, help="directory for ca.crt, tls.*")
    cert.add_argument(
        "--host",
        action="append",
        help="a name or address the certificate is for (repeatable; default localhost, 127.0.0.1)",
    )
    cert.set_defaults(handler=_cert)

    stack = commands.add_parser(
        "stack", help="run SESERAGI_EDGE_REPLICAS service replicas behind Envoy"
    )
    stack.set_defaults(handler=_stack)


def _token(args: argparse.Namespace) -> int:
    from seseragi.edge import tokens

    settings = Settings()
    ttl = tokens.parse_ttl(args.ttl)
    if ttl > settings.edge_jwt_max_lifetime:
        limit = settings.edge_jwt_max_lifetime
        print(
            f"seseragi token: --ttl {args.ttl} exceeds the edge's cap of {limit}s", file=sys.stderr
        )
        return 2
    print(tokens.mint(settings, args.sub, ttl, algorithm=args.alg))
    return 0


def _jwks(args: argparse.Namespace) -> int:
    from seseragi.edge import keys

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(keys.es256_jwks(keys.dev_es256_key(Settings().edge_dir)))
    args.out.chmod(0o644)  # public keys only; Envoy's own user reads it in the container
    print(args.out)
    return 0


def _cert(args: argparse.Namespace) -> int:
    from seseragi.edge import certs

    hosts = tuple(args.host or certs.DEFAULT_HOSTS)
    # Readable by Envoy's own user in a container (compose mounts the directory); development only.
    issued = certs.issue(args.out, hosts, key_mode=0o644)
    print(issued.ca, issued.cert, issued.key, sep="\n")
    return 0


def _render(args: argparse.Namespace) -> int:
    from seseragi.edge import deploy, render

    if args.target:
        for name in args.target:
            try:
                deploy.render_target(Settings(), name, args.root)
            except FileNotFoundError as error:
                raise SystemExit(f"seseragi envoy render: {error}") from None
            target = deploy.TARGETS[name]  # relative to the checkout
            print(*(p for p in (target.config, target.descriptor, target.rules) if p), sep="\n")
        return 0
    if args.out is None:
        raise SystemExit("seseragi envoy render: give --out DIR or --target compose|k8s|sidecar")
    try:
        rendered = render.render(Settings(), args.out, listen_address=args.listen)
    except ValueError as error:  # a setting is missing or malformed: say which, no traceback
        raise SystemExit(f"seseragi envoy render: {error}") from None
    print(rendered.config)
    return 0


def _stack(args: argparse.Namespace) -> int:
    from seseragi import logs
    from seseragi.edge import stack

    settings = Settings()
    logs.configure(settings.log_level)
    return stack.run(settings)


def _serve(args: argparse.Namespace) -> int:
    from seseragi import logs
    from seseragi.api.identity import UnguardedStart
    from seseragi.runtime.app import serve
    from seseragi.runtime.engines import keep_torch_out

    settings = args.flags.read(args)
    logs.configure(settings.log_level)
    if settings.engine_process:
        keep_torch_out()
    try:
        asyncio.run(serve(settings))
    except UnguardedStart as refused:
        print(f"seseragi serve: {refused}", file=sys.stderr)
        return 2
    return 0


def _worker(args: argparse.Namespace) -> int:
    from seseragi import logs
    from seseragi.runtime.engines import keep_torch_out
    from seseragi.runtime.worker import work

    settings = args.flags.read(args)
    logs.configure(settings.log_level)
    if settings.engine_process:
        keep_torch_out()
    asyncio.run(work(settings))
    return 0


def _pull(args: argparse.Namespace) -> int:
    from seseragi import logs
    from seseragi.model import builtin

    settings = Settings()
    logs.configure(settings.log_level)
    if settings.model != DEFAULT_MODEL:
        print(f"SESERAGI_MODEL={settings.model} is loaded as it is; nothing to pull")
        return 0
    path = builtin.pull(settings.cache_dir, progress=sys.stderr)
    print(f"{DEFAULT_MODEL} ready in {path}")
    return 0


def _target(args: argparse.Namespace) -> str:
    return args.target or Settings().address


def _client(args: argparse.Namespace) -> Client:
    from seseragi_client import Client

    return Client(_target(args), token=args.token, tls=args.tls)


def _generate(args: argparse.Namespace) -> int:
    from seseragi_client import SeseragiError, build_request

    request = build_request(
        prompt=None if args.chat else args.prompt,
        messages=[("user", args.prompt)] if args.chat else (),
        temperature=args.temperature,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        stop=args.stop,
    )
    with _client(args) as client:
        try:
            if not args.stream:
                print(client.generate(request).text)
                return 0
            for event in client.stream(request):
                if event.HasField("delta"):
                    sys.stdout.write(event.delta.text)
                    sys.stdout.flush()
            sys.stdout.write("\n")
        except SeseragiError as error:
            print(f"error: {error}", file=sys.stderr)
            for field, why in error.field_violations().items():
                print(f"  {field}: {why}", file=sys.stderr)
            return 1
    return 0


def _info(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json_format.MessageToJson(client.model_info()))
    return 0


def _health(args: argparse.Namespace) -> int:
    """Exit 0 only on SERVING, so `HEALTHCHECK` and exec probes need no curl or grpcurl."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = args.target or _loopback_address(Settings())
    request = health_pb2.HealthCheckRequest(service=args.service)
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=args.timeout)
        except grpc.RpcError as error:
            print(f"{target}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{target} {args.service or '(liveness)'}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


def _loopback_address(settings: Settings) -> str:
    """A server bound to every interface (as in a container) is asked on loopback."""
    wildcard = settings.host in {"0.0.0.0", "::", "[::]", ""}
    return f"127.0.0.1:{settings.port}" if wildcard else settings.address


if __name__ == "__main__":
    sys.exit(main())
