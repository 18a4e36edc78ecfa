"""Generated code for package assistants.v1 (see protos/assistants/v1)."""
