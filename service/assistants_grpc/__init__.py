"""An Assistants API served over gRPC."""
