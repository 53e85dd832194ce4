"""Prefect flows: train, retrain, promote and roll back the weight model."""
