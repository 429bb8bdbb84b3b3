"""The core <-> front-end wire: every command, event and error survives the round trip."""

from __future__ import annotations

import pytest

from seseragi.engine import ipc
from seseragi.engine.detokenizer import IncrementalDetokenizer
from seseragi.engine.errors import DeadlineExpired, EngineStopped, ModelFailure
from seseragi.engine.sequence import Sequence, SequenceStatus
from seseragi.engine.stop_sequences import StopSequenceMatcher
from seseragi.engine.types import (
    Failed,
    Finished,
    Request,
    SamplingParams,
    StoppingParams,
    StopReason,
    StructuredOutput,
    TextDelta,
    Timings,
    TokenLogprob,
)

pytestmark = pytest.mark.unit


class _Chars:
    def decode(self, token_ids: object) -> str:
        return ""


def _sequence(seq_id: int = 7) -> Sequence:
    request = Request("r", (1, 2), SamplingParams(), StoppingParams(max_new_tokens=4))
    return Sequence(
        seq_id,
        request,
        IncrementalDetokenizer(_Chars(), (1, 2)),
        StopSequenceMatcher((), include_stop_sequence=False),
        lambda event: None,
        arrival_time=1.0,
    )


def test_an_add_command_carries_every_request_field() -> None:
    request = Request(
        request_id="abc",
        prompt_token_ids=(5, 6, 7),
        sampling=SamplingParams(0.7, 0.9, 40, 1.1, (1 << 64) - 1, 0.5, -0.5, 0.1, ((3, 2.0),)),
        stopping=StoppingParams(32, 2, ("\n", "END"), True, 2.5, (8, 9), True),
        logprobs=True,
        top_logprobs=3,
        deadline=123.25,
        structured=StructuredOutput("json_schema", '{"type": "object"}'),
    )
    command = ipc.decode(ipc.add_command(9, 10.5, request))
    assert command[0] == ipc.ADD
    assert ipc.request_from_wire(command) == (9, 10.5, request)


def test_events_survive_the_wire() -> None:
    seq = _sequence()
    seq.output_token_ids = [4, 5, 6]
    delta = TextDelta("Par", [4], 1, [TokenLogprob(4, -0.5, ((4, -0.5), (9, -1.5)))])
    finished = Finished(StopReason.STOP_SEQUENCE, ".", 2, 3, Timings(0.1, 0.2, 0.3, 0.6))
    for event in (delta, finished):
        wire = ipc.event_from_wire(ipc.decode(ipc.encode(ipc.event_to_wire(seq, event))))
        assert (wire.seq_id, wire.event) == (7, event)
    assert wire.output_token_ids == [4, 5, 6]


@pytest.mark.parametrize(
    "error", [DeadlineExpired("late"), ModelFailure("nan"), EngineStopped("x")]
)
def test_engine_errors_keep_their_kind_so_the_error_table_maps_them(error: Exception) -> None:
    wire = ipc.decode(ipc.encode(ipc.event_to_wire(_sequence(), Failed(error))))
    event = ipc.event_from_wire(wire).event
    assert isinstance(event, Failed)
    assert type(event.error) is type(error) and str(event.error) == str(error)


def test_an_unknown_error_arrives_as_a_core_error_with_its_name() -> None:
    wire = ipc.event_to_wire(_sequence(), Failed(ZeroDivisionError("boom")))
    error = ipc.event_from_wire(wire).event
    assert isinstance(error, Failed) and isinstance(error.error, ipc.CoreError)
    assert str(error.error) == "boom"


def test_a_snapshot_brings_the_front_end_copy_up_to_date() -> None:
    core, front = _sequence(), _sequence()
    core.status, core.scheduled_time, core.first_token_time = SequenceStatus.RUNNING, 2.0, 3.0
    snap = ipc.decode(ipc.encode(ipc.snapshot(core)))
    assert ipc.apply_snapshot({7: front}, snap) is front
    assert (front.status, front.scheduled_time, front.first_token_time) == (
        SequenceStatus.RUNNING,
        2.0,
        3.0,
    )
    assert ipc.apply_snapshot({}, snap) is None
