"""The development inspector of ``voicehooks dev``: see, and replay, recent deliveries.

``Inspector(app, secret=...)`` is an ASGI app that serves ``app`` and, at ``/_voicehooks/``,
a live list of recent deliveries grouped by call, each delivery's detail (the decoded event
with personal data masked until asked for, the answer, the log lines, each tool's timing) and
a replay button. It is for development only: it keeps deliveries in memory, and it switches
the app into development mode, where a replay may bypass duplicate suppression.

Modules: ``store`` (the bounded ring of recent deliveries, log capture, live watchers),
``masking`` (the masking rule), ``pages`` (server-rendered HTML), ``web`` (routes, replay).
"""

from .web import Inspector

__all__ = ["Inspector"]
