"""The system under test: an AOF Redis, two replicas and Envoy, started once per run and put
back together after each scenario."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from chaos.edge import Edge
from chaos.ports import free_port
from chaos.redis_server import AofRedis
from chaos.replicas import Replica, Workers, process_env
from seseragi.api.identity import SECRET_HEADER, SUBJECT_HEADER
from seseragi.config import Settings

SECRET = "chaos-edge-secret"
REPLICAS = 2
SUBJECTS = 16  # load is spread over callers, so the per-caller caps are not what refuses it


class Stack:
    """Everything a scenario may hurt; `heal()` restarts whatever a scenario left down."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.redis = AofRedis(work_dir / "redis")
        # Replicas run no jobs: `seseragi worker` processes do, as in production.
        # A 5 s visibility timeout (30 s shipped) so a killed worker's job is reclaimed in a
        # short run; it changes when a reclaim happens, not whether.
        self.env = process_env(
            self.redis.url, SECRET, job_concurrency="0", job_visibility_timeout_seconds="5"
        )
        self.replicas = [Replica(self.env, work_dir / f"replica-{i}.log") for i in range(REPLICAS)]
        settings = Settings(
            cache_dir=work_dir,  # the development signing key lives here
            edge_secret=SECRET,
            edge_port=free_port(),
            edge_admin_port=free_port(),
            edge_upstreams=",".join(r.target for r in self.replicas),
            edge_http_upstreams="",
            edge_requests_per_minute=100_000,  # per caller: not what this suite measures
            heartbeat_interval_seconds=0.5,
        )
        self.edge = Edge(settings, work_dir / "envoy", drain_grace_s=60)
        self._tokens = [self.edge.token(f"caller-{i}") for i in range(SUBJECTS)]

    def __enter__(self) -> Stack:
        try:
            self.redis.start()
            for replica in self.replicas:
                replica.start()
            for replica in self.replicas:
                replica.wait_ready()
            self.edge.start()
            self.edge.wait_routable()
            self.wait_all_healthy()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def metadata(self, i: int) -> tuple[tuple[str, str], ...]:
        """Call metadata of caller `i` (mod SUBJECTS) through the edge."""
        return (("authorization", f"Bearer {self._tokens[i % SUBJECTS]}"),)

    def caller(self, subject: str) -> tuple[tuple[str, str], ...]:
        """Metadata of a caller of its own: a scenario's jobs are listed apart from others'."""
        return (("authorization", f"Bearer {self.edge.token(subject)}"),)

    def direct(self, subject: str) -> tuple[tuple[str, str], ...]:
        """What Envoy adds for `subject`: for calls sent straight to a replica."""
        return ((SUBJECT_HEADER, subject), (SECRET_HEADER, SECRET))

    def workers(self) -> Workers:
        return Workers(self.env, self.work_dir / "workers.log")

    def wait_all_healthy(self, timeout_s: float = 300) -> float:
        """Seconds until Envoy sees every replica healthy."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if all(self.edge.healthy(r.port) for r in self.replicas):
                return time.monotonic() - started
            time.sleep(0.2)
        raise TimeoutError("a replica did not come back into Envoy's rotation")

    def heal(self) -> None:
        """Restart whatever is down and wait until the whole stack serves again."""
        if self.redis.process is None or self.redis.process.poll() is not None:
            self.redis.start()
        else:
            self.redis.thaw()
        for replica in self.replicas:
            if not replica.alive():
                replica.start()
                replica.wait_ready()
        if self.edge.process is None or self.edge.process.poll() is not None:
            self.edge.start()
        self.edge.wait_routable()
        self.wait_all_healthy()

    def close(self) -> None:
        self.edge.stop()
        for replica in self.replicas:
            replica.stop()
        self.redis.stop()
