"""The fault suite (`make chaos`): real replicas, Envoy, Redis and workers, hurt on purpose."""
