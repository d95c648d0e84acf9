"""Watching the app: the ``Observer`` seam, the records it is handed, and the observers shipped.

Metrics (``voicehooks.observe.metrics``, the ``[metrics]`` extra) and traces
(``voicehooks.observe.tracing``, the ``[otel]`` extra) are imported from their own modules, so
that an app without those extras imports neither. ``JSONFormatter`` writes one JSON object per
log line; name it in a ``dictConfig`` as ``voicehooks.observe.JSONFormatter``.
"""

from voicehooks.core.logs import JSONFormatter
from voicehooks.core.records import (
    Delivery,
    DeliveryOutcome,
    JobOutcome,
    JobRun,
    ToolOutcome,
    ToolRun,
)

from .observers import Observer
from .recording import Recorder
from .toolstats import ToolStats

__all__ = [
    "Delivery",
    "DeliveryOutcome",
    "JSONFormatter",
    "JobOutcome",
    "JobRun",
    "Observer",
    "Recorder",
    "ToolOutcome",
    "ToolRun",
    "ToolStats",
]
