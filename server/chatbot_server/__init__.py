"""gRPC server of the retrieval-augmented chatbot."""
