"""voicehooks: a small, fast, typed receiver for HMS Sovereign / VoiceDock webhooks."""

from .app import VoiceHooks
from .core.events import (
    AssistantRequest,
    CallStatus,
    EndOfCallReport,
    Event,
    StatusUpdate,
    ToolCall,
    ToolCalls,
)
from .core.exceptions import (
    ConfigurationError,
    QueueError,
    StoreError,
    ToolError,
    Unavailable,
    VoiceHooksError,
)
from .core.injection import CallContext
from .core.responses import AssistantResponse, ToolResult, normalize_result, results_from_response
from .core.signing import sign
from .live.api import (
    CallEnded,
    PlatformAPIError,
    PlatformClient,
    PlatformUnavailable,
    RateLimited,
    Unauthorized,
)
from .live.control import CommandLimit, LiveCall
from .live.interim import LateResult
from .live.reconcile import Reconciliation
from .observe.observers import Observer
from .observe.recording import Recorder
from .observe.toolstats import ToolStats
from .state.stores import DeliveryStore, MemoryStore, RedisStore
from .work.queue import RedisQueue

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
