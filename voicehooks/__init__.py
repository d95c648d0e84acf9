"""voicehooks: a small, fast, typed receiver for HMS Sovereign / VoiceDock webhooks."""

from .api import (
    CallEnded,
    PlatformAPIError,
    PlatformClient,
    PlatformUnavailable,
    RateLimited,
    Unauthorized,
)
from .app import VoiceHooks
from .context import CallContext
from .events import (
    AssistantRequest,
    CallStatus,
    EndOfCallReport,
    Event,
    StatusUpdate,
    ToolCall,
    ToolCalls,
)
from .exceptions import (
    ConfigurationError,
    QueueError,
    StoreError,
    ToolError,
    Unavailable,
    VoiceHooksError,
)
from .interim import LateResult
from .live import CommandLimit, LiveCall
from .observers import Observer
from .queue import RedisQueue
from .reconcile import Reconciliation
from .recording import Recorder
from .responses import AssistantResponse, ToolResult, normalize_result, results_from_response
from .signing import sign
from .stores import DeliveryStore, MemoryStore, RedisStore
from .toolstats import ToolStats

__version__ = "0.1.0"

__all__ = [
    "AssistantRequest",
    "AssistantResponse",
    "CallContext",
    "CallEnded",
    "CallStatus",
    "CommandLimit",
    "ConfigurationError",
    "DeliveryStore",
    "EndOfCallReport",
    "Event",
    "LateResult",
    "LiveCall",
    "MemoryStore",
    "Observer",
    "PlatformAPIError",
    "PlatformClient",
    "PlatformUnavailable",
    "QueueError",
    "RateLimited",
    "Reconciliation",
    "Recorder",
    "RedisQueue",
    "RedisStore",
    "StatusUpdate",
    "StoreError",
    "ToolCall",
    "ToolCalls",
    "ToolError",
    "ToolResult",
    "ToolStats",
    "Unauthorized",
    "Unavailable",
    "VoiceHooks",
    "VoiceHooksError",
    "__version__",
    "normalize_result",
    "results_from_response",
    "sign",
]
