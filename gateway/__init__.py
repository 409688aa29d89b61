"""The HTTP gateway over the ingest gRPC API, and the web app it serves (docs/gateway.md)."""
