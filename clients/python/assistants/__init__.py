"""Generated protobuf and gRPC modules for the assistants API."""
