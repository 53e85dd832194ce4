"""Prefect flows: train, retrain, promote and roll back each project's model."""
