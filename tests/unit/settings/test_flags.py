"""A flag of `seseragi serve`/`worker` wins over its variable, which wins over the default."""

from __future__ import annotations

import argparse

import pytest

from seseragi.cli import _parser
from seseragi.settings import ServeSettings, WorkerSettings

pytestmark = pytest.mark.unit


def read(*argv: str) -> ServeSettings | WorkerSettings:
    args = _parser().parse_args(list(argv))
    settings: ServeSettings | WorkerSettings = args.flags.read(args)
    return settings


def test_a_flag_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESERAGI_PORT", "50061")
    monkeypatch.setenv("SESERAGI_MODEL", "from-env")
    settings = read("serve", "--port", "50062")
    assert isinstance(settings, ServeSettings)
    assert settings.port == 50062
    assert settings.model == "from-env"  # no flag: the variable


def test_without_flag_or_variable_the_default_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESERAGI_MAX_RUNNING_REQUESTS", raising=False)
    assert read("serve").max_running_requests == 32


def test_boolean_list_and_choice_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESERAGI_PREFIX_CACHING", "true")
    settings = read(
        "serve",
        "--no-prefix-caching",
        "--engine-process",
        "--metrics-latency-buckets",
        "[0.5, 2]",
        "--quantization",
        "int8",
    )
    assert settings.prefix_caching is False
    assert settings.engine_process is True
    assert settings.metrics_latency_buckets == (0.5, 2.0)
    assert settings.quantization == "int8"


def test_the_worker_takes_its_own_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESERAGI_JOB_CONCURRENCY", "4")
    settings = read("worker", "--job-concurrency", "1", "--model", "m")
    assert isinstance(settings, WorkerSettings)
    assert (settings.job_concurrency, settings.model) == (1, "m")


def test_the_worker_has_no_port_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["worker", "--port", "1"])
    assert exited.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["serve", "--port", "70000"], "port"),
        (["serve", "--device", "tpu"], "device"),
        (["worker", "--job-concurrency", "-1"], "job_concurrency"),
    ],
)
def test_a_bad_value_exits_2_naming_the_setting(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args: argparse.Namespace = _parser().parse_args(argv)
    with pytest.raises(SystemExit) as exited:
        args.flags.read(args)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert f"error: {named}:" in error
    assert "Traceback" not in error


def test_a_bad_variable_exits_2_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESERAGI_KV_BLOCK_SIZE", "0")
    with pytest.raises(SystemExit) as exited:
        read("serve")
    assert exited.value.code == 2
    assert "kv_block_size:" in capsys.readouterr().err
