"""Durable jobs with real `seseragi worker` processes SIGKILLed at random moments."""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from seseragi.api.identity import SUBJECT_HEADER
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc
from tests.e2e.test_cli_and_grpcurl import grpcurl
from tests.helpers import chat
from tests.redis_servers import delete_keys
from tests.servers import REDIS_TEST_PREFIX, ServerThread, make_settings

pytestmark = pytest.mark.e2e
# The 50 jobs, with short outputs: the CI machine has two shared CPU cores.
JOBS = 50
FIRST_WAVE = 10  # submitted before any worker is up; the rest while workers are being killed
MAX_NEW_TOKENS = 6
KILLS = 3
VISIBILITY_TIMEOUT_S = 3
OWNER = ((SUBJECT_HEADER, "chaos"),)
LIVE = (jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)


class Workers:
    """`seseragi worker` processes on one queue, oldest first."""

    def __init__(self, prefix: str, concurrency: int = 4) -> None:
        self._env = {
            **os.environ,
            "SESERAGI_REDIS_KEY_PREFIX": prefix,
            "SESERAGI_JOB_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT_S),
            "SESERAGI_JOB_CONCURRENCY": str(concurrency),
            "SESERAGI_TORCH_THREADS": "1",
            "SESERAGI_LOG_LEVEL": "WARNING",
            "SESERAGI_METRICS_PORT": "0",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "seseragi.cli", "worker"],
                env=self._env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def sigkill_oldest(self) -> None:
        victim = self.processes.pop(0)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(30)


@pytest.fixture
def front(loaded_model: LoadedModel) -> Iterator[tuple[ServerThread, str]]:
    prefix = f"{REDIS_TEST_PREFIX}chaos-{secrets.token_hex(3)}:"
    settings = make_settings(redis_key_prefix=prefix, job_concurrency=0)
    with ServerThread(settings, loaded_model) as server:
        yield server, prefix
    delete_keys(settings.redis_url, prefix)


def all_jobs(stub: jobs_pb2_grpc.JobServiceStub) -> list[jobs_pb2.Job]:
    return list(stub.ListJobs(jobs_pb2.ListJobsRequest(page_size=1000), metadata=OWNER).jobs)


def test_grpcurl_sees_the_job_service(front: tuple[ServerThread, str]) -> None:
    listed = grpcurl("-plaintext", front[0].target, "list")
    assert "seseragi.v1.JobService" in listed.stdout.split(), listed.stderr


class Submitter(threading.Thread):
    """Submits jobs at random intervals on a channel of its own, recording each job id."""

    def __init__(self, target: str, first: int, count: int) -> None:
        super().__init__(daemon=True)
        self._target = target
        self._numbers = range(first, first + count)
        self.job_ids: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random()
        try:
            with grpc.insecure_channel(self._target) as channel:
                stub = jobs_pb2_grpc.JobServiceStub(channel)
                for i in self._numbers:
                    self.job_ids.append(submit(stub, i))
                    time.sleep(rng.uniform(0.0, 0.5))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            self.error = exc


def submit(stub: jobs_pb2_grpc.JobServiceStub, i: int) -> str:
    request = chat(f"Count from {i} to {i + 5}.", max_new_tokens=MAX_NEW_TOKENS)
    response = stub.SubmitJob(jobs_pb2.SubmitJobRequest(request=request), metadata=OWNER)
    job_id: str = response.job.job_id
    return job_id


def test_every_job_completes_once_while_workers_are_sigkilled(
    front: tuple[ServerThread, str],
) -> None:
    server, prefix = front
    rng = random.Random()
    with grpc.insecure_channel(server.target) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        submitted = [submit(stub, i) for i in range(FIRST_WAVE)]
        later = Submitter(server.target, FIRST_WAVE, JOBS - FIRST_WAVE)
        workers = Workers(prefix)
        workers.start()
        workers.start()
        kills = kills_while_submitting = 0
        deadline = time.monotonic() + 540
        try:
            while time.monotonic() < deadline:
                jobs = all_jobs(stub)
                submitted_all = later.ident is not None and not later.is_alive()
                if submitted_all and len(jobs) == JOBS and all(j.state not in LIVE for j in jobs):
                    break
                running = any(job.state == jobs_pb2.JOB_STATE_RUNNING for job in jobs)
                if running and later.ident is None:
                    later.start()  # workers are up: the rest arrive while they are killed
                if running and kills < KILLS:
                    time.sleep(rng.uniform(0.0, 1.0))  # a random moment while jobs run
                    workers.sigkill_oldest()
                    workers.start()
                    kills += 1
                    kills_while_submitting += later.is_alive()
                time.sleep(0.2)
        finally:
            workers.stop_all()
            later.join(60)
        assert later.error is None, later.error
        submitted += later.job_ids
        assert len(set(submitted)) == len(submitted) == JOBS
        jobs = all_jobs(stub)
        assert {job.job_id for job in jobs} == set(submitted)  # none lost, none extra
        assert kills == KILLS and kills_while_submitting >= 1
        states = [job.state for job in jobs]
        assert states.count(jobs_pb2.JOB_STATE_SUCCEEDED) == JOBS, states
        reruns = sum(job.attempts - 1 for job in jobs)
        assert reruns >= 1, "no job was running on a killed worker"
        for job_id in submitted:
            assert_completed_once(stub, job_id)
        print(f"{JOBS} jobs, {kills} workers SIGKILLed, {reruns} reruns after reclaim")


def test_sigterm_worker_finishes_its_job_and_claims_no_more(
    front: tuple[ServerThread, str],
) -> None:
    """One job slot, so the worker's claim loop waits while its job runs; SIGTERM mid-job."""
    server, prefix = front
    workers = Workers(prefix, concurrency=1)
    tokens = 48
    long = chat("Count from 1 to 100.", max_new_tokens=tokens, min_new_tokens=tokens)
    with grpc.insecure_channel(server.target) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        first = stub.SubmitJob(jobs_pb2.SubmitJobRequest(request=long), metadata=OWNER).job
        workers.start()
        try:
            deadline = time.monotonic() + 300  # the worker loads the model first
            while time.monotonic() < deadline:
                job = stub.GetJob(jobs_pb2.GetJobRequest(job_id=first.job_id), metadata=OWNER).job
                if job.state == jobs_pb2.JOB_STATE_RUNNING and job.generated_token_count:
                    break
                time.sleep(0.1)
            worker = workers.processes[0]
            worker.send_signal(signal.SIGTERM)
            second = submit(stub, 1)
            assert worker.wait(120) == 0
        finally:
            workers.stop_all()
        done = stub.GetJob(jobs_pb2.GetJobRequest(job_id=first.job_id), metadata=OWNER).job
        assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED and done.attempts == 1
        assert done.generated_token_count == tokens
        left = stub.GetJob(jobs_pb2.GetJobRequest(job_id=second), metadata=OWNER).job
        assert left.state == jobs_pb2.JOB_STATE_QUEUED and left.attempts == 0


def assert_completed_once(stub: jobs_pb2_grpc.JobServiceStub, job_id: str) -> None:
    """What a caller sees: one final, each token index once, and the log equal to the result."""
    job = stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), metadata=OWNER).job
    events = [
        m.event for m in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), metadata=OWNER)
    ]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.count("started") == 1 and kinds.count("final") == 1 and kinds[-1] == "final"
    counts = [e.delta.generated_token_count for e in events if e.HasField("delta")]
    assert counts == sorted(set(counts))
    tokens = [t for e in events if e.HasField("delta") for t in e.delta.token_ids]
    assert tokens == list(job.result.token_ids)
    assert len(tokens) == job.result.usage.output_tokens == events[-1].final.usage.output_tokens
