"""The platform's own long-running processes, supervised beside the infrastructure.

Each one is a ``tidemark`` command; it is started once the infrastructure is healthy.
"""

from __future__ import annotations

from pathlib import Path

from flows.supervised import components as flow_services
from infra.local.components import Component
from monitoring.supervised import components as monitoring_services
from serving.supervised import components as serving_services
from streaming.supervised import components as streaming_services
from tidemark.config import Settings


def platform_services(settings: Settings, state: Path) -> list[Component]:
    """The services that ``make up`` runs on top of the infrastructure."""
    return [
        *flow_services(settings, state),
        *serving_services(settings, state),
        *streaming_services(settings, state),
        *monitoring_services(settings, state),
    ]
