"""voicehooks: a small, fast, typed receiver for HMS Sovereign / VoiceDock webhooks.

The names here are the whole of the everyday API. A few subpackages are documented too:
``voicehooks.events`` (every event struct), ``voicehooks.exceptions`` (every error),
``voicehooks.observe`` (observers, metrics, traces, the log formatter),
``voicehooks.mcp`` (which tools MCP offers), ``voicehooks.privacy`` (finding personal
data in what callers say) and ``voicehooks.testing`` (the test kit). Everything else is
internal and may move.
"""

from . import _moved
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
from .core.exceptions import ConfigurationError, ToolError, VoiceHooksError
from .core.injection import CallContext
from .core.signing import sign
from .live.api import PlatformClient
from .live.control import CommandLimit, LiveCall
from .live.interim import LateResult
from .live.reconcile import Reconciliation
from .observe.observers import Observer
from .pipeline.assistant import AssistantResponse
from .pipeline.toolcalls import ToolResult
from .settings import Background, Deadlines, Duplicates, Limits, Mcp, Platform, Privacy
from .state.callstate import CallState
from .state.postgres import PostgresStore
from .state.stores import DeliveryStore, MemoryStore, RedisStore
from .tools.sensitive import Sensitive
from .work.pgqueue import PostgresQueue
from .work.queue import RedisQueue, WorkQueue

__version__ = "0.2.0"

__all__ = [
    "AssistantRequest",
    "AssistantResponse",
    "Background",
    "CallContext",
    "CallState",
    "CallStatus",
    "CommandLimit",
    "ConfigurationError",
    "Deadlines",
    "DeliveryStore",
    "Duplicates",
    "EndOfCallReport",
    "Event",
    "LateResult",
    "Limits",
    "LiveCall",
    "Mcp",
    "MemoryStore",
    "Observer",
    "Platform",
    "PlatformClient",
    "PostgresQueue",
    "PostgresStore",
    "Privacy",
    "Reconciliation",
    "RedisQueue",
    "RedisStore",
    "Sensitive",
    "StatusUpdate",
    "ToolCall",
    "ToolCalls",
    "ToolError",
    "ToolResult",
    "VoiceHooks",
    "VoiceHooksError",
    "WorkQueue",
    "__version__",
    "sign",
]

_moved.register_modules()
__getattr__ = _moved.moved_root_name
