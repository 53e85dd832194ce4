"""What starts Tidemark's real components: the local stack and the Docker Compose stack."""
