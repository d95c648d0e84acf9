"""Watching the app: the ``Observer`` seam, the records it is handed, and the observers shipped.

Metrics (``voicehooks.observe.metrics``, the ``[metrics]`` extra) and traces
(``voicehooks.observe.tracing``, the ``[otel]`` extra) are imported from their own modules, so
that an app without those extras imports neither. ``Health`` serves the probes
(``GET /healthz``). ``setup()`` configures voicehooks' logs as ``voicehooks run`` does;
``JSONFormatter`` writes one JSON object per log line and ``TextFormatter`` one readable
line (name them in a ``dictConfig`` as ``voicehooks.observe.JSONFormatter``).
"""

from voicehooks.core.logs import JSONFormatter, TextFormatter, setup
from voicehooks.core.records import (
    Delivery,
    DeliveryOutcome,
    JobOutcome,
    JobRun,
    ToolOutcome,
    ToolRun,
)

from .health import Health
from .observers import Observer
from .recording import Recorder
from .toolstats import ToolStats

__all__ = [
    "Delivery",
    "DeliveryOutcome",
    "Health",
    "JSONFormatter",
    "JobOutcome",
    "JobRun",
    "Observer",
    "Recorder",
    "TextFormatter",
    "ToolOutcome",
    "ToolRun",
    "ToolStats",
    "setup",
]
