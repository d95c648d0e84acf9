"""The voicehooks error tree.

::

    VoiceHooksError
    ├── ConfigurationError      the app or a registration is wrong; raised at import time
    ├── RequestError            a delivery is rejected; the pipeline maps each to one status
    │   ├── MethodNotAllowed        405
    │   ├── UnsupportedMediaType    415
    │   ├── PayloadTooLarge         413
    │   ├── RequestTimeout          408
    │   ├── SignatureError          401
    │   └── PayloadError            400
    ├── ToolError               raised by a tool: its message is the result the caller hears
    └── StoreError              the duplicate-delivery store failed or timed out

Only ``RequestError`` subclasses reach the wire, as ``{"error": message}``, and a
``StoreError`` (503) when the app was built with ``store_failure="reject"``. Their messages
describe the request, never its contents: no body, no signature, no secret.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "MethodNotAllowed",
    "PayloadError",
    "PayloadTooLarge",
    "RequestError",
    "RequestTimeout",
    "SignatureError",
    "StoreError",
    "ToolError",
    "UnsupportedMediaType",
    "VoiceHooksError",
]


class VoiceHooksError(Exception):
    """Base class of every error voicehooks raises."""


class ConfigurationError(VoiceHooksError):
    """The app or one of its registrations is wrong. Raised at import time, never per request."""


class RequestError(VoiceHooksError):
    """A delivery was rejected before any handler ran. The message is sent to the sender."""


class MethodNotAllowed(RequestError):
    """The request used a method other than POST."""


class UnsupportedMediaType(RequestError):
    """The request's content type is not JSON."""


class PayloadTooLarge(RequestError):
    """The request body is larger than the app's ``max_body_bytes``."""


class RequestTimeout(RequestError):
    """The body did not arrive within the app's ``body_timeout_seconds``."""


class SignatureError(RequestError):
    """The signature or timestamp is missing, malformed, stale or does not match."""


class PayloadError(RequestError):
    """The body is not JSON, or does not fit the platform's envelope."""


class ToolError(VoiceHooksError):
    """Raise in a tool to answer the call with an error the assistant may say aloud.

    Example:
        >>> raise ToolError("That slot is taken. Offer the caller another time.")
        Traceback (most recent call last):
        ...
        voicehooks.exceptions.ToolError: That slot is taken. Offer the caller another time.
    """


class StoreError(VoiceHooksError):
    """The duplicate-delivery store failed or did not answer in time."""
