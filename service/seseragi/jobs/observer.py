"""What the job store and worker report as they go, as plain calls: metrics live in telemetry."""

from __future__ import annotations

from typing import Protocol


class JobObserver(Protocol):
    def submitted(self) -> None:
        """A new job was queued (a repeated idempotency key is not a new job)."""

    def ended(self, state: str) -> None:
        """A job reached `state` (succeeded, failed or cancelled); called once per job."""

    def reclaimed(self) -> None:
        """A worker took over a job whose worker went silent."""

    def queue_depth(self, jobs: int, capacity: int) -> None:
        """The shared queue holds `jobs` queued or running jobs, out of `capacity`."""


class NullJobObserver:
    """The default: observes nothing."""

    def submitted(self) -> None:
        pass

    def ended(self, state: str) -> None:
        pass

    def reclaimed(self) -> None:
        pass

    def queue_depth(self, jobs: int, capacity: int) -> None:
        pass
