"""The local stack: Kafka, FerretDB, MLflow and Prefect as supervised processes, no Docker."""
