"""Who is calling: the subject Envoy verified, or "anonymous" when no edge stands in front.

The edge issue adds the proof that Envoy (not the client) set the header; every per-caller
feature (limits, job ownership, logs) asks this module and nothing else.
"""

from __future__ import annotations

import grpc

SUBJECT_HEADER = "x-seseragi-subject"
ANONYMOUS = "anonymous"


def caller(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == SUBJECT_HEADER and isinstance(value, str) and value:
            return value
    return ANONYMOUS
