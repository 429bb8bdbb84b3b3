"""Rules for the global rate-limit service (envoyproxy/ratelimit), from the edge's own limits.

Envoy's `rate_limits` actions (edge/envoy.yaml.j2) emit descriptors with these keys; the
service counts them in Redis, so the limits hold across every Envoy replica.
"""

from __future__ import annotations

from typing import Any

from seseragi.settings import EdgeSettings

DOMAIN = "seseragi"
SUBJECT_KEY = "subject"  # value: the verified `sub`, one counter per caller
GLOBAL_KEY = "global"  # value: GLOBAL_VALUE, one counter for everyone
GLOBAL_VALUE = "all"
HEALTH_KEY = "remote_address"  # value: the caller's address; health checks only (Envoy's name)


def descriptors() -> dict[str, str]:
    """The keys Envoy's actions emit, for the template (one place names them)."""
    return {
        "domain": DOMAIN,
        "subject_key": SUBJECT_KEY,
        "global_key": GLOBAL_KEY,
        "global_value": GLOBAL_VALUE,
    }


def service_config(settings: EdgeSettings) -> dict[str, Any]:
    """The service's YAML rules: the same per-minute numbers as the local token buckets."""
    return {
        "domain": DOMAIN,
        "descriptors": [
            {
                "key": SUBJECT_KEY,
                "rate_limit": {
                    "unit": "minute",
                    "requests_per_unit": settings.edge_requests_per_minute,
                },
            },
            {
                "key": HEALTH_KEY,
                "rate_limit": {
                    "unit": "minute",
                    "requests_per_unit": settings.edge_health_requests_per_minute,
                },
            },
            {
                "key": GLOBAL_KEY,
                "value": GLOBAL_VALUE,
                "rate_limit": {
                    "unit": "minute",
                    "requests_per_unit": settings.edge_global_requests_per_minute,
                },
            },
        ],
    }


def service_config_text(settings: EdgeSettings) -> str:
    # Imported here: only rendering the rules needs it, never a serving replica.
    import yaml  # type: ignore[import-untyped,unused-ignore]

    header = (
        "# envoyproxy/ratelimit rules, rendered by `seseragi envoy render --target` from the\n"
        "# SESERAGI_EDGE_*REQUESTS_PER_MINUTE settings; do not edit a rendered copy.\n"
    )
    body: str = yaml.safe_dump(service_config(settings), sort_keys=False)
    return header + body
