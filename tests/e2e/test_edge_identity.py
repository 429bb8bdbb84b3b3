"""Through a real Envoy: only a token with a usable subject and a short life is a credential,
and only from the authorization header."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import jwt
import pytest

from seseragi.edge.keys import KEY_ID, dev_key
from seseragi.model.loader import LoadedModel
from seseragi_contract.v1 import generation_pb2 as pb
from seseragi_contract.v1 import generation_pb2_grpc
from tests.edges import EnvoyProcess, edge_settings
from tests.servers import TEST_EDGE_SECRET, ServerThread, make_settings

pytestmark = pytest.mark.e2e
MAX_LIFETIME_S = 3600


@pytest.fixture(scope="module")
def envoy(
    loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("edge-identity")
    with ServerThread(make_settings(edge_secret=TEST_EDGE_SECRET), loaded_model) as server:
        settings = edge_settings(
            tmp, [server.target], edge_secret=TEST_EDGE_SECRET, edge_jwt_max_lifetime=MAX_LIFETIME_S
        )
        with EnvoyProcess(settings, tmp / "envoy") as running:
            yield running


def signed(envoy: EnvoyProcess, **claims: object) -> str:
    """A development token with exactly these claims besides issuer and audience."""
    base = {"iss": envoy.settings.edge_jwt_issuer, "aud": envoy.settings.edge_jwt_audience}
    key = dev_key(envoy.settings.edge_dir)
    return jwt.encode({**base, **claims}, key, algorithm="HS256", headers={"kid": KEY_ID})


def model_info(envoy: EnvoyProcess, token: str) -> pb.GetModelInfoResponse:
    with grpc.insecure_channel(envoy.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        response: pb.GetModelInfoResponse = stub.GetModelInfo(
            pb.GetModelInfoRequest(), metadata=metadata, timeout=30
        )
        return response


@pytest.mark.parametrize(
    "case", ["no-sub", "empty-sub", "anonymous-sub", "no-exp", "too-long-lived"]
)
def test_tokens_without_a_usable_subject_or_a_short_life_are_refused(
    envoy: EnvoyProcess, case: str
) -> None:
    now = int(time.time())
    claims: dict[str, object] = {
        "no-sub": {"exp": now + 600},
        "empty-sub": {"sub": "", "exp": now + 600},
        "anonymous-sub": {"sub": "anonymous", "exp": now + 600},
        "no-exp": {"sub": "forever"},
        "too-long-lived": {"sub": "patient", "iat": now, "exp": now + 2 * MAX_LIFETIME_S},
    }[case]
    before = envoy.stat("cluster.seseragi.upstream_rq_total")
    with pytest.raises(grpc.RpcError) as refused:
        model_info(envoy, signed(envoy, **claims))
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED, refused.value.details()
    assert envoy.stat("cluster.seseragi.upstream_rq_total") == before  # no replica saw it


def test_a_good_token_reaches_a_replica_that_enforces_identity(envoy: EnvoyProcess) -> None:
    now = int(time.time())
    info = model_info(envoy, signed(envoy, sub="alice", iat=now, exp=now + 600))
    assert info.identity_enforced


def test_a_token_in_the_url_is_no_credential(envoy: EnvoyProcess) -> None:
    now = int(time.time())
    token = signed(envoy, sub="alice", exp=now + 600)
    request = urllib.request.Request(
        f"{envoy.url}/v1/tokenize?access_token={token}",
        data=json.dumps({"prompt": "hi"}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
