"""The FastAPI model server that follows the registry."""
