"""`make chaos` / `python -m chaos.run [--quick]`: every fault scenario against one real stack,
one table, and docs/reliability.md rewritten with the figures of this run."""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

from chaos import report
from chaos.outcome import Durations, Outcome
from chaos.scenarios import (
    admission,
    envoy_term,
    extreme_sampling,
    fuzz,
    redis_outage,
    redis_restart,
    replica_kill,
    replica_term,
    soak,
    tokenless_flood,
    worker_kill,
)
from chaos.stack import Stack

SCENARIOS: dict[str, ModuleType] = {
    "replica-kill": replica_kill,
    "replica-term": replica_term,
    "envoy-term": envoy_term,
    "redis-restart": redis_restart,
    "redis-outage": redis_outage,
    "worker-kill": worker_kill,
    "extreme-sampling": extreme_sampling,
    "tokenless-flood": tokenless_flood,
    "admission": admission,
    "fuzz": fuzz,
    "soak": soak,
}
DEFAULT_DOC = Path("docs/reliability.md")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds per long row, not minutes")
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run this scenario (repeatable)"
    )
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="the page to write")
    parser.add_argument("--work-dir", type=Path, help="logs and Redis files (default: a temp dir)")
    return parser.parse_args(argv)


def run_one(module: ModuleType, stack: Stack, durations: Durations) -> Outcome:
    """One scenario; an exception is a FAIL row naming it, and the stack is healed after."""
    started = time.monotonic()
    try:
        outcome: Outcome = module.run(stack, durations)
    except Exception as error:  # noqa: BLE001 - a crashed scenario is a row, not the end of the run
        traceback.print_exc()
        outcome = Outcome(
            module.NAME, module.LOAD, module.MUST, detail=f"did not finish: {error!r}"
        )
    outcome.duration_s = time.monotonic() - started
    print(
        f"{'PASS' if outcome.passed else 'FAIL'} {outcome.scenario}: {outcome.detail}", flush=True
    )
    stack.heal()
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    durations = Durations.quick() if args.quick else Durations.full()
    chosen = [SCENARIOS[name] for name in args.only or SCENARIOS]
    with tempfile.TemporaryDirectory(prefix="seseragi-chaos-") as temp:
        work_dir = args.work_dir or Path(temp)
        print(f"starting Redis (AOF), 2 replicas and Envoy; logs in {work_dir}", flush=True)
        with Stack(work_dir) as stack:
            rows = [run_one(module, stack, durations) for module in chosen]
    print(report.table(rows))
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    report.write(args.doc, rows, durations, args.quick)
    print(f"wrote {args.doc}")
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
