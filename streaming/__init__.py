"""Kafka stream processing: the simulator, the scorer and the joiner."""
