"""Errors the engine raises or reports; the server maps each to one gRPC status."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every engine error."""


class EngineFull(EngineError):
    """Both the running batch and the waiting queue are full."""

    def __init__(self, running: int, waiting: int, retry_after_s: float) -> None:
        super().__init__(
            f"the engine is full ({running} running, {waiting} waiting); "
            f"retry in {retry_after_s:.1f}s"
        )
        self.retry_after_s = retry_after_s


class DeadlineExpired(EngineError):
    """The request's deadline passed while it waited; it was never prefilled."""


class EngineStopped(EngineError):
    """The engine is shutting down and takes no new work."""


class ModelFailure(EngineError):
    """One sequence could not go on (forward pass, sampling or detokenizing); it alone ends."""


class GrammarError(ValueError):
    """A structured-output spec that does not compile; the message says why, for the caller."""
