"""Error and drift monitors on the joined stream."""
