"""The contract as a FileDescriptorSet, which Envoy's grpc_json_transcoder reads.

`make proto` compiles it from protos/ into the contract package, so it ships with the installed
package and rendering needs no source checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = "seseragi_contract.v1"
NAME = "seseragi.binpb"


def packaged() -> bytes:
    """The descriptor set the contract package ships (generation.proto with its imports)."""
    return resources.files(PACKAGE).joinpath(NAME).read_bytes()


def write(out: Path) -> Path:
    """Write the descriptor set to `out` (its folder made when missing)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(packaged())
    return out
