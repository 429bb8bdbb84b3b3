"""The edge: Envoy's configuration, development keys and tokens, and the local stack."""
