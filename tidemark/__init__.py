"""Tidemark: score a live stream, learn from the truth that arrives later, retrain and redeploy."""

import os

# Whoever can register a model version must not get code run here: MLflow unpickles a
# pickle-format model unless this says false (its default is true). Set before anything of
# Tidemark can import MLflow, and forced, so that every Tidemark process runs with it.
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"

__version__ = "0.1.0"
