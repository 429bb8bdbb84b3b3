"""`make bench-redis`: result-cache hit vs miss latency, and job throughput with 1 and 2 workers.

Runs the real `seseragi serve` and `seseragi worker` processes against the Redis at
SESERAGI_REDIS_URL, under a key prefix of its own that it deletes afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc

from bench.server_proc import ServerProcess
from seseragi.config import Settings
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc, jobs_pb2, jobs_pb2_grpc
from tests.redis_servers import delete_keys

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
WORKER_READY_TIMEOUT_S = 300.0


def greedy(question: str, max_new_tokens: int) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        messages=[pb.ChatMessage(role="user", content=question)],
        sampling=pb.SamplingParams(temperature=0.0),
        stopping=pb.StoppingCriteria(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens),
    )


def cache_latency(prefix: str, out: Path, prompts: int, max_new_tokens: int) -> dict[str, float]:
    env = {"SESERAGI_REDIS_KEY_PREFIX": prefix, "SESERAGI_JOB_CONCURRENCY": "0"}
    misses, hits = [], []
    with (
        ServerProcess(env, out / "redis-cache-server.log") as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        for i in range(prompts):
            request = greedy(f"Tell me about the number {i}.", max_new_tokens)
            began = time.perf_counter()
            assert not stub.Generate(request, timeout=300).cached
            misses.append(time.perf_counter() - began)
            for _ in range(3):
                began = time.perf_counter()
                assert stub.Generate(request, timeout=300).cached
                hits.append(time.perf_counter() - began)
    miss, hit = statistics.median(misses), statistics.median(hits)
    return {
        "max_new_tokens": max_new_tokens,
        "miss_ms_median": miss * 1000,
        "hit_ms_median": hit * 1000,
        "hit_speedup": miss / hit,
    }


def start_worker(prefix: str, threads: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SESERAGI_REDIS_KEY_PREFIX": prefix,
        "SESERAGI_TORCH_THREADS": str(threads),
        "SESERAGI_JOB_CONCURRENCY": "16",
        "SESERAGI_METRICS_PORT": "0",  # workers export metrics too; a free port each
    }
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "seseragi.cli", "worker"], env=env, stderr=sink
        )


def wait_ready(log: Path) -> None:
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while "worker ready" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker not ready; see {log}")
        time.sleep(0.2)


def job_throughput(
    prefix: str, out: Path, workers: int, jobs: int, max_new_tokens: int
) -> dict[str, float]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {"SESERAGI_REDIS_KEY_PREFIX": prefix, "SESERAGI_JOB_CONCURRENCY": "0"}
    logs = [out / f"redis-worker-{workers}-{i}.log" for i in range(workers)]
    processes = [start_worker(prefix, threads, log) for log in logs]
    try:
        for log in logs:
            wait_ready(log)
        with (
            ServerProcess(env, out / "redis-jobs-server.log") as server,
            grpc.insecure_channel(server.target) as channel,
        ):
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            began = time.perf_counter()
            for i in range(jobs):
                request = greedy(f"Write about the number {i}.", max_new_tokens)
                stub.SubmitJob(jobs_pb2.SubmitJobRequest(request=request))
            while True:
                listed = stub.ListJobs(jobs_pb2.ListJobsRequest(page_size=1000)).jobs
                done = [j for j in listed if j.state == jobs_pb2.JOB_STATE_SUCCEEDED]
                if len(done) == jobs:
                    break
                time.sleep(0.1)
            elapsed = time.perf_counter() - began
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    return {
        "workers": workers,
        "torch_threads_per_worker": threads,
        "jobs": jobs,
        "max_new_tokens": max_new_tokens,
        "seconds": elapsed,
        "jobs_per_second": jobs / elapsed,
        "tokens_per_second": jobs * max_new_tokens / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = f"seseragi-bench-{secrets.token_hex(4)}:"
    try:
        results = {
            "cache": cache_latency(prefix + "cache:", args.out, 6, args.max_new_tokens),
            "jobs": [
                job_throughput(f"{prefix}jobs{n}:", args.out, n, args.jobs, args.max_new_tokens)
                for n in (1, 2)
            ],
        }
    finally:
        delete_keys(Settings().redis_url, prefix)
    (args.out / "redis.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
