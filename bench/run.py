"""`make bench`: naive and static-batch transformers baselines, then Seseragi over gRPC."""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from bench import baselines, grpc_load, report
from bench.metrics import ScenarioResult
from bench.server_proc import ServerProcess
from bench.workload import PROMPTS, Workload
from seseragi.config import DEFAULT_MODEL, Settings
from seseragi.model import builtin

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 naive requests, batch of 4, 16 new tokens, concurrency 1 and 4",
    )
    parser.add_argument(
        "--naive-requests",
        type=int,
        default=None,
        help="requests measured for the naive baseline (default 4; 2 with --quick)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results go")
    return parser.parse_args(argv)


def choose_workload(args: argparse.Namespace) -> Workload:
    workload = Workload.quick() if args.quick else Workload.full()
    if args.naive_requests is not None:
        if args.naive_requests < 1:
            raise SystemExit("--naive-requests must be at least 1")
        workload = Workload(
            max_new_tokens=workload.max_new_tokens,
            naive_requests=args.naive_requests,
            batch_size=workload.batch_size,
            concurrencies=workload.concurrencies,
            sequential_requests=workload.sequential_requests,
        )
    return workload


def server_settings(settings: Settings) -> dict[str, str]:
    """The served model and its limits; CPU float32 like the baselines, so they compare."""
    return {
        "SESERAGI_MODEL": DEFAULT_MODEL,
        "SESERAGI_CACHE_DIR": str(settings.cache_dir),
        "SESERAGI_DEVICE": "cpu",
        "SESERAGI_DTYPE": "float32",
        "SESERAGI_QUANTIZATION": "none",
        "SESERAGI_MAX_RUNNING_REQUESTS": "32",
        "SESERAGI_MAX_QUEUED_REQUESTS": "64",
        "SESERAGI_SHUTDOWN_GRACE_SECONDS": "5",
        # Measure the engine: the result cache would answer repeated prompts without the model,
        # and jobs would share the engine with the measured calls.
        "SESERAGI_RESULT_CACHE": "false",
        "SESERAGI_JOB_CONCURRENCY": "0",
        "SESERAGI_METRICS_PORT": "0",
    }


def describe(workload: Workload, model_dir: Path, server: dict[str, str]) -> dict[str, Any]:
    return {
        "workload": asdict(workload),
        "distinct_prompts": len(PROMPTS),
        "model_dir": str(model_dir),
        "server_settings": server,
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "transformers": metadata.version("transformers"),
        "grpcio": metadata.version("grpcio"),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(),
    }


def warn_if_busy() -> None:
    """Timings are only meaningful on an otherwise idle machine; say so when it is not."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cores:
        print(
            f"warning: 1-minute load average is {load:.2f} on {cores} cores;"
            " other work will distort these timings",
            flush=True,
        )


def run_scenarios(
    workload: Workload, model_dir: Path, server: dict[str, str], out: Path
) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    for function, label in (
        (baselines.run_naive, baselines.NAIVE_LABEL),
        (baselines.run_static_batch, baselines.BATCH_LABEL),
    ):
        print(f"running {label} ...", flush=True)
        results.append(baselines.in_child(function, str(model_dir), workload))
    print("starting the Seseragi server ...", flush=True)
    with ServerProcess(server, out / "server.log") as process:
        print(f"server ready on {process.target} (pid {process.pid})", flush=True)
        for concurrency in workload.concurrencies:
            print(f"running Seseragi at concurrency {concurrency} ...", flush=True)
            results.append(grpc_load.run_one(process.target, process.pid, workload, concurrency))
    return results


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through ServerProcess, which stops the server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    workload = choose_workload(args)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings.model_validate({})  # SESERAGI_* variables and .env
    model_dir = builtin.pull(settings.cache_dir)
    server = server_settings(settings)
    config = describe(workload, model_dir, server)
    warn_if_busy()

    results = run_scenarios(workload, model_dir, server, out)
    checks = report.targets(results)
    print()
    print(report.table(results))
    print()
    print(report.targets_text(checks))
    report.write_json(out / "results.json", config, results, checks)
    report.write_chart(out / "throughput.png", results)
    print(f"\nwrote {out / 'results.json'} and {out / 'throughput.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
