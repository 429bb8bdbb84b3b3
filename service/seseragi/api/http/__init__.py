"""The OpenAI-compatible HTTP face: the same generations as gRPC, in OpenAI's JSON."""
