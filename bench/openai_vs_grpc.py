"""`python -m bench.openai_vs_grpc`: what the OpenAI API costs over gRPC, both through Envoy.

One replica (CPU float32, result cache off) behind Envoy with a signed token; each round runs
16 concurrent streaming clients over the OpenAI API (the official SDK) and the same over gRPC
(GenerateStream), on the same token-exact prompts, greedy, exactly N new tokens. The side that
goes first alternates per round, and ratios are taken within a round, because the machine is
shared and its load drifts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import openai

from bench import grpc_load, openai_load
from bench import openai_vs_grpc_report as report
from bench.edge_proc import EdgeProcess, edge_settings
from bench.engines import server_settings
from bench.metrics import summarize
from bench.prompts import RenderedPrompt, load_tokenizer, workload_prompts
from bench.report import cpu_name
from bench.rounds import Round
from bench.server_proc import ServerProcess, free_port
from seseragi.config import Settings
from seseragi.model import builtin
from seseragi_contract.v1 import generation_pb2_grpc

CLIENTS = 16
RESULTS = Path("bench/results/openai-vs-grpc.json")
PAGE = Path("docs/benchmark/openai-vs-grpc.md")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.openai_vs_grpc", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round, 16 new tokens")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    parser.add_argument("--new-tokens", type=int, default=None, help="default 128 (16 --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON results")
    parser.add_argument("--page", type=Path, default=PAGE, help="the markdown table")
    parser.add_argument("--note", default="", help="a line under the table (machine load, say)")
    return parser.parse_args(argv)


async def grpc_side(target: str, token: str, prompts: list[RenderedPrompt], tokens: int) -> Any:
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        requests = [
            grpc_load.build_request(p, tokens, f"bench-grpc-{i}") for i, p in enumerate(prompts)
        ]
        started = time.perf_counter()
        calls = [
            grpc_load.stream_one(stub, r, len(p.token_ids), metadata)
            for r, p in zip(requests, prompts, strict=True)
        ]
        timings = list(await asyncio.gather(*calls))
        wall = time.perf_counter() - started
    return summarize(report.GRPC, f"gRPC GenerateStream, {len(prompts)} streams", timings, wall, 0)


async def openai_side(
    edge: EdgeProcess, model: str, prompts: list[RenderedPrompt], tokens: int
) -> Any:
    async with openai.AsyncOpenAI(
        base_url=edge.base_url, api_key=edge.token, max_retries=0
    ) as client:
        timings, wall = await openai_load.run_concurrent(client, model, prompts, tokens)
    label = f"OpenAI /v1/completions (openai SDK), {len(prompts)} streams"
    return summarize(report.OPENAI, label, timings, wall, 0)


def run_round(
    edge: EdgeProcess, model: str, prompts: list[RenderedPrompt], tokens: int, index: int
) -> Round:
    """Both faces once; the first side alternates so neither always meets a warmer machine."""
    sides = [report.GRPC, report.OPENAI]
    if index % 2:
        sides.reverse()
    found: dict[str, dict[str, Any]] = {}
    for side in sides:
        if side == report.GRPC:
            result = asyncio.run(grpc_side(edge.target, edge.token, prompts, tokens))
        else:
            result = asyncio.run(openai_side(edge, model, prompts, tokens))
        found[side] = asdict(result)
        print(f"  {side}: {result.tokens_per_second:.1f} tok/s", flush=True)
    print(f"  OpenAI/gRPC: {report.round_ratios(found)}", flush=True)
    return found


def describe(
    args: argparse.Namespace, rounds: int, tokens: int, prompts: list[RenderedPrompt]
) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}",
        "load_average_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "rounds": rounds,
        "clients": CLIENTS,
        "prompt_tokens": len(prompts[0].token_ids),
        "max_new_tokens": tokens,
        "command": "python -m bench.openai_vs_grpc" + (" --quick" if args.quick else ""),
        "note": args.note,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    tokens = args.new_tokens or (16 if args.quick else 128)
    model_dir = builtin.pull(Settings().cache_dir)
    prompts = workload_prompts(load_tokenizer(str(model_dir)), CLIENTS)
    config = describe(args, rounds, tokens, prompts)
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="seseragi-oai-bench-") as state:
        http_port = free_port()
        replica = {
            **server_settings(Settings().cache_dir),
            "SESERAGI_HTTP_PORT": str(http_port),
            "SESERAGI_EDGE_SECRET": secret,
            "SESERAGI_MAX_REQUESTS_PER_CALLER": "0",
        }
        with ServerProcess(replica, Path(state) / "seseragi.log") as server:
            settings = edge_settings(Path(state), secret, server.target, f"127.0.0.1:{http_port}")
            with EdgeProcess(settings, Path(state) / "envoy") as edge:
                model = server_settings(Settings().cache_dir)["SESERAGI_MODEL"]
                run_round(edge, model, prompts[:2], 2, 0)  # warm-up: both paths, both sides
                measured = []
                for index in range(rounds):
                    print(f"round {index + 1}/{rounds}", flush=True)
                    measured.append(run_round(edge, model, prompts, tokens, index))
    write(args, config, measured)
    print(report.markdown(measured, config))
    return 0


def write(args: argparse.Namespace, config: dict[str, Any], measured: list[Round]) -> None:
    results = {"config": config, "rounds": measured, "summary": report.summarize(measured)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(report.markdown(measured, config))


if __name__ == "__main__":
    raise SystemExit(main())
