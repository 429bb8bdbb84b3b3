"""Interleaved A/B over gRPC: the engine as a thread of the server vs. in its own core process.

Each round starts a fresh `seseragi serve` per mode (the order alternates) and runs the same
scenarios against it; the machine is shared and noisy, so compare ratios within a round.
`python -m bench.engine_ab --rounds 3` prints one line per scenario and the core/thread ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import psutil

from bench import grpc_load
from bench.engines import Serving, server_settings
from bench.metrics import ScenarioResult
from bench.prompts import RenderedPrompt, load_tokenizer, workload_prompts
from bench.run import DEFAULT_OUT
from bench.server_proc import ServerProcess
from bench.workload import PROMPTS, Workload
from seseragi.config import Settings
from seseragi.model import builtin

MODES = {"thread": "false", "core": "true"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server and its live children (the core process)."""
    server = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [server, *server.children(recursive=True)])


def run_mode(
    mode: str,
    workload: Workload,
    prompts: list[RenderedPrompt],
    out: Path,
    index: int,
    serving: Serving,
) -> list[tuple[ScenarioResult, float]]:
    """Each scenario's figures and the server's CPU seconds per generated token during it."""
    settings = {
        **server_settings(Settings().cache_dir, serving),
        "SESERAGI_ENGINE_PROCESS": MODES[mode],
    }
    results = []
    with ServerProcess(settings, out / f"server-{mode}-{index}.log") as server:
        for concurrency in workload.concurrencies:
            before = cpu_seconds(server.pid)
            result = grpc_load.run_one(server.target, server.pid, workload, concurrency, prompts)
            results.append((result, (cpu_seconds(server.pid) - before) / result.tokens))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "engine-ab")
    parser.add_argument("--quantization", choices=("none", "int8", "int4"), default="none")
    args = parser.parse_args(argv)
    workload = Workload(args.max_new_tokens, 0, 16, tuple(args.concurrency), sequential_requests=2)
    settings = Settings()
    tokenizer = load_tokenizer(str(builtin.pull(settings.cache_dir)))
    prompts = workload_prompts(tokenizer, min(workload.most, len(PROMPTS)))
    rows: dict[tuple[str, str], list[ScenarioResult]] = {}
    for index in range(args.rounds):
        order = ("thread", "core") if index % 2 == 0 else ("core", "thread")
        for mode in order:
            serving = Serving(quantization=args.quantization)
            for result, cpu_per_token in run_mode(
                mode, workload, prompts, args.out, index, serving
            ):
                rows.setdefault((mode, result.name), []).append(result)
                print(
                    f"round {index} {mode:6} {result.name:14} {result.tokens_per_second:7.1f} tok/s"
                    f"  ttft p50 {result.ttft_p50 or 0:.3f}s  itl p50 {result.itl_p50 or 0:.4f}s"
                    f"  peak rss {result.peak_rss_bytes / 2**20:.0f} MiB"
                    f"  cpu {cpu_per_token * 1000:.1f} ms/token",
                    flush=True,
                )
    summary = {}
    for (mode, name), results in sorted(rows.items()):
        summary[f"{mode}/{name}"] = {
            "tok_s": [round(r.tokens_per_second, 1) for r in results],
            "median_tok_s": round(statistics.median(r.tokens_per_second for r in results), 1),
        }
    for name in {name for _, name in rows}:
        ratios = [
            core.tokens_per_second / thread.tokens_per_second
            for core, thread in zip(rows[("core", name)], rows[("thread", name)], strict=True)
        ]
        summary[f"ratio/{name}"] = {"per_round": [round(r, 3) for r in ratios]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
