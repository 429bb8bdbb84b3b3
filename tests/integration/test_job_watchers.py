"""Many WatchJob streams share one Redis reader: the replica's Redis client count stays bounded."""

from __future__ import annotations

import time

import grpc
import pytest
import redis

from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import jobs_pb2, jobs_pb2_grpc
from tests.helpers import chat
from tests.redis_servers import PrivateRedis
from tests.servers import TEST_EDGE_SECRET, ServerThread, as_caller, make_settings

pytestmark = pytest.mark.integration
ALICE = as_caller("alice")
WATCHERS = 120
MAX_CONNECTIONS = 4


def test_many_watchers_hold_few_redis_connections_and_all_see_the_end(
    loaded_model: LoadedModel,
) -> None:
    private = PrivateRedis()
    private.start()
    settings = make_settings(
        redis_url=private.url,
        job_concurrency=0,  # no worker: the jobs stay queued and their watchers wait
        edge_secret=TEST_EDGE_SECRET,
        max_watches_per_caller=0,
        redis_max_connections=MAX_CONNECTIONS,
    )
    r = redis.Redis(port=private.port)
    try:
        with ServerThread(settings, loaded_model) as server:
            channels = [grpc.insecure_channel(server.target) for _ in range(3)]
            stubs = [jobs_pb2_grpc.JobServiceStub(c) for c in channels]
            request = jobs_pb2.SubmitJobRequest(request=chat("Hi", max_new_tokens=2))
            job_ids = [stubs[0].SubmitJob(request, metadata=ALICE).job.job_id for _ in range(3)]
            watches = [
                stubs[i % 3].WatchJob(
                    jobs_pb2.WatchJobRequest(job_id=job_ids[i % 3]), metadata=ALICE
                )
                for i in range(WATCHERS)
            ]
            for watch in watches:
                assert next(watch).event.HasField("started")
            for watch in watches:
                assert next(watch).event.HasField("heartbeat")  # each is waiting on the tail
            clients = int(r.info("clients")["connected_clients"])
            # two pools of MAX_CONNECTIONS, the one shared reader, and this test's client
            assert clients <= 2 * MAX_CONNECTIONS + 2, clients
            began = time.monotonic()
            for job_id in job_ids:
                stubs[0].CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id), metadata=ALICE)
            for watch in watches:
                with pytest.raises(grpc.RpcError) as ended:
                    for _ in watch:
                        pass
                assert ended.value.code() == grpc.StatusCode.CANCELLED
            assert time.monotonic() - began < 5
            for channel in channels:
                channel.close()
    finally:
        private.kill()
