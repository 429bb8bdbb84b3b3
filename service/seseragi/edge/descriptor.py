"""The contract as a FileDescriptorSet, which Envoy's grpc_json_transcoder reads."""

from __future__ import annotations

import os
from pathlib import Path

PROTOS = Path(__file__).resolve().parents[3] / "protos"
CONTRACT = "seseragi/v1/generation.proto"


def build(out: Path) -> Path:
    """Compile protos/ (with the google.api annotations it imports) into `out`."""
    from grpc_tools import protoc  # imported only when a descriptor is built

    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    out.parent.mkdir(parents=True, exist_ok=True)
    status = protoc.main(
        [
            "protoc",
            f"-I{PROTOS}",
            f"-I{include}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            CONTRACT,
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed ({status}) building {out}")
    return out
