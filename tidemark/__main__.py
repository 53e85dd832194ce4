"""``python -m tidemark`` is the ``tidemark`` command."""

from tidemark.cli import app

app()
