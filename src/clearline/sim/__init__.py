"""The simulated world: a deterministic event kernel and in-memory links."""
