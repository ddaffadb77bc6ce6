"""What the rest of the server stands on: the gRPC plumbing (handler wrapper, access log,
errors, health, reflection), logging, and the PostgreSQL and Redis connections."""
