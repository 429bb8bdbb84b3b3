"""The gRPC face of the engine: the only code that knows protobuf types."""
