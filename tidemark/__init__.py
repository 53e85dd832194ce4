"""Tidemark: score a live stream, learn from the truth that arrives later, retrain and redeploy."""

__version__ = "0.1.0"
