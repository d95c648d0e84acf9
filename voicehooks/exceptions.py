"""Every error voicehooks raises, in one place.

    VoiceHooksError
    ├── ConfigurationError      the app or a registration is wrong; raised at import time
    ├── RequestError            a delivery is rejected; its class says the HTTP status
    │   ├── MethodNotAllowed        405
    │   ├── UnsupportedMediaType    415
    │   ├── PayloadTooLarge         413
    │   ├── RequestTimeout          408
    │   ├── SignatureError          401
    │   ├── PayloadError            400
    │   └── Unavailable             503 (with Retry-After): the app cannot take it now
    ├── ToolError               raised by a tool: its message is the result the caller hears
    ├── StoreError              the duplicate-delivery store failed or timed out
    ├── CallStateFull           a write would take a call's CallState past its size bound
    ├── QueueError              the durable queue's Redis failed or timed out
    │   └── QueueFull               the durable queue is at its length bound
    └── PlatformAPIError        the platform's REST API refused or failed a request
        ├── Unauthorized            401/403: the API key
        ├── CallEnded               the call is over: no command reaches it any more
        ├── RateLimited             429, or no slot under the per-call limit in time
        └── PlatformUnavailable     5xx, timeouts, connection failures
            └── OutcomeUnknown          a control command may have been carried out; not resent

The core errors live in ``voicehooks.core.exceptions``, the API's in ``voicehooks.live.api``;
this is their public home.
"""

from .core.exceptions import (
    CallStateFull,
    ConfigurationError,
    MethodNotAllowed,
    PayloadError,
    PayloadTooLarge,
    QueueError,
    QueueFull,
    RequestError,
    RequestTimeout,
    SignatureError,
    StoreError,
    ToolError,
    Unavailable,
    UnsupportedMediaType,
    VoiceHooksError,
)
from .live.api import (
    CallEnded,
    OutcomeUnknown,
    PlatformAPIError,
    PlatformUnavailable,
    RateLimited,
    Unauthorized,
)

__all__ = [
    "CallEnded",
    "CallStateFull",
    "ConfigurationError",
    "MethodNotAllowed",
    "OutcomeUnknown",
    "PayloadError",
    "PayloadTooLarge",
    "PlatformAPIError",
    "PlatformUnavailable",
    "QueueError",
    "QueueFull",
    "RateLimited",
    "RequestError",
    "RequestTimeout",
    "SignatureError",
    "StoreError",
    "ToolError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "VoiceHooksError",
]
