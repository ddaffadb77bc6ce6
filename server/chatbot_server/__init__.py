"""gRPC server of the retrieval-augmented chatbot."""

import os

# The server forks only to run PostgreSQL's own tools, never a process that uses gRPC, so
# gRPC's fork handlers are not needed (they would log a line for every such fork). This
# must be set before gRPC is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
