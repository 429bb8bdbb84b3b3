"""The transformers baselines (naive one-at-a-time and one static batch), each in a fresh process.

Each baseline runs in its own spawned child, so its model memory is gone before the next
scenario and its peak RSS is the child's own high-water mark. Both take the bench's rendered
token ids, the same every engine receives.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, cast

from bench.metrics import RequestTiming, ScenarioResult, summarize
from bench.workload import Workload

if TYPE_CHECKING:
    from transformers.generation.streamers import BaseStreamer

NAIVE_LABEL = "(a) HF generate, one request at a time"
BATCH_LABEL = "(b) HF generate, one static batch"


class ArrivalStreamer:
    """A transformers streamer that timestamps every decoding step for the requests it serves.

    `generate` first hands it the prompt ids, then one token per sequence each step.
    """

    def __init__(self, timings: Sequence[RequestTiming]) -> None:
        self.timings = timings
        self.prompt_seen = False

    def put(self, value: object) -> None:
        now = time.perf_counter()
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for timing in self.timings:
            timing.arrivals.append((now, 1))

    def end(self) -> None:
        """Nothing is buffered."""


Prompts = Sequence[Sequence[int]]


def in_child(
    function: Callable[[str, Workload, Prompts], ScenarioResult],
    model_dir: str,
    workload: Workload,
    prompts: Prompts,
) -> ScenarioResult:
    """Run one baseline in a freshly spawned process and return its result.

    A child that dies (killed, out of memory) raises here instead of hanging; leaving early
    (an error, SIGTERM) terminates the child.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main,
        args=(function, model_dir, workload, [list(ids) for ids in prompts], sender),
        name="bench-baseline",
    )
    child.start()
    sender.close()  # the child holds the only write end, so its death ends recv() with EOFError
    received = False
    try:
        status, payload = receiver.recv()
        received = True
    except EOFError:
        raise RuntimeError("the baseline process died before it reported") from None
    finally:
        receiver.close()
        _reap(child, grace_seconds=10.0 if received else 0.0)
    if status != "ok" or not isinstance(payload, ScenarioResult):
        raise RuntimeError(f"the baseline failed in its process:\n{payload}")
    return payload


def _child_main(
    function: Callable[[str, Workload, Prompts], ScenarioResult],
    model_dir: str,
    workload: Workload,
    prompts: Prompts,
    sender: Connection,
) -> None:
    try:
        sender.send(("ok", function(model_dir, workload, prompts)))
    except Exception:
        sender.send(("error", traceback.format_exc()))
    finally:
        sender.close()


def _reap(child: BaseProcess, grace_seconds: float) -> None:
    """Let a child that reported exit by itself; stop any other at once (SIGTERM, then SIGKILL)."""
    child.join(grace_seconds)
    if child.is_alive():
        child.terminate()
        child.join(5)
    if child.is_alive():
        child.kill()
        child.join()


def run_naive(model_dir: str, workload: Workload, prompts: Prompts) -> ScenarioResult:
    """Like a naive HTTP handler: `generate`, decode, one request after another."""
    model, tokenizer = _load(model_dir)
    _warm_up(model, tokenizer, prompts[0])
    timings: list[RequestTiming] = []
    started = time.perf_counter()
    for index in range(workload.naive_requests):
        ids = prompts[index % len(prompts)]
        timings.append(_one_request(model, tokenizer, ids, workload.max_new_tokens))
    wall = time.perf_counter() - started
    return summarize("naive", NAIVE_LABEL, timings, wall, peak_rss_self())


def run_static_batch(model_dir: str, workload: Workload, prompts: Prompts) -> ScenarioResult:
    """All `batch_size` requests in one `generate` call (equal lengths: no padding)."""
    import torch

    model, tokenizer = _load(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    _warm_up(model, tokenizer, prompts[0])
    count = workload.batch_size
    chosen = [list(prompts[i % len(prompts)]) for i in range(count)]
    if len({len(ids) for ids in chosen}) != 1:
        raise ValueError("a static batch without padding needs prompts of one length")
    started = time.perf_counter()
    timings = [RequestTiming(started) for _ in range(count)]
    input_ids = torch.tensor(chosen)
    encoded = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    with torch.inference_mode():
        output = model.generate(
            **encoded, **_generate_kwargs(tokenizer, workload.max_new_tokens, timings)
        )
    width = encoded["input_ids"].shape[1]
    tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
    wall = time.perf_counter() - started
    _check_lengths([output.shape[1] - width] * count, timings)
    return summarize("static_batch", BATCH_LABEL, timings, wall, peak_rss_self())


def peak_rss_self() -> int:
    """This process's peak resident set size in bytes (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _load(model_dir: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model, tokenizer


def _generate_kwargs(
    tokenizer: Any, max_new_tokens: int, timings: Sequence[RequestTiming]
) -> dict[str, Any]:
    """Greedy, exactly `max_new_tokens` tokens (EOS ignored), every step timestamped."""
    return {
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": max_new_tokens,
        "do_sample": False,
        "pad_token_id": tokenizer.pad_token_id,
        "streamer": cast("BaseStreamer", ArrivalStreamer(timings)),
    }


def _one_request(
    model: Any, tokenizer: Any, ids: Sequence[int], max_new_tokens: int
) -> RequestTiming:
    import torch

    timing = RequestTiming(time.perf_counter())
    input_ids = torch.tensor([list(ids)])
    encoded = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    with torch.inference_mode():
        output = model.generate(**encoded, **_generate_kwargs(tokenizer, max_new_tokens, [timing]))
    width = encoded["input_ids"].shape[1]
    tokenizer.decode(output[0, width:], skip_special_tokens=True)
    _check_lengths([output.shape[1] - width], [timing])
    return timing


def _warm_up(model: Any, tokenizer: Any, ids: Sequence[int]) -> None:
    """One short untimed generation, as the server also does before it reports ready."""
    _one_request(model, tokenizer, ids, 2)


def _check_lengths(generated: Sequence[int], timings: Sequence[RequestTiming]) -> None:
    for produced, timing in zip(generated, timings, strict=True):
        if produced != timing.tokens:
            raise RuntimeError(f"generate made {produced} tokens but streamed {timing.tokens}")
