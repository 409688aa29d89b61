"""The generated poster.v1 stubs (sdk/python/scripts/gen_grpc_stubs.sh; do not edit)."""
