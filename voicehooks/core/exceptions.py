"""The errors of the core and the layers above it but the REST API's; ``voicehooks.exceptions``
draws the whole tree (the API's errors included) and is their public home.

Only ``RequestError`` subclasses reach the wire, as ``{"error": message}`` with the class's
``status``. Their messages describe the request, never its contents: no body, no signature,
no secret.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CallStateFull",
    "ConfigurationError",
    "MethodNotAllowed",
    "PayloadError",
    "PayloadTooLarge",
    "QueueError",
    "QueueFull",
    "RequestError",
    "RequestTimeout",
    "SignatureError",
    "StoreError",
    "ToolError",
    "Unavailable",
    "UnsupportedMediaType",
    "VoiceHooksError",
]


class VoiceHooksError(Exception):
    """Base class of every error voicehooks raises."""


class ConfigurationError(VoiceHooksError):
    """The app or one of its registrations is wrong. Raised at import time, never per request."""


class RequestError(VoiceHooksError):
    """A delivery was rejected before any handler ran. The message is sent to the sender.

    Each subclass names its HTTP ``status``; the pipeline reads it from the class.
    """

    status: ClassVar[int]


class MethodNotAllowed(RequestError):
    """The request used a method other than POST."""

    status = 405


class UnsupportedMediaType(RequestError):
    """The request's content type is not JSON."""

    status = 415


class PayloadTooLarge(RequestError):
    """The request body is larger than the app's ``max_body_bytes``."""

    status = 413


class RequestTimeout(RequestError):
    """The body did not arrive within the app's ``body_timeout_seconds``."""

    status = 408


class SignatureError(RequestError):
    """The signature or timestamp is missing, malformed, stale or does not match."""

    status = 401


class PayloadError(RequestError):
    """The body is not JSON, or does not fit the platform's envelope."""

    status = 400


class Unavailable(RequestError):
    """The app cannot take the delivery now (a full queue, a store that must not be skipped).

    Answered 503 with ``Retry-After`` when ``retry_after_seconds`` is set: a sender that
    retries comes back later, and nothing was accepted that could then be lost.
    """

    status = 503

    def __init__(self, message: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ToolError(VoiceHooksError):
    """Raise in a tool to answer the call with an error the assistant may say aloud.

    Examples:
        >>> raise ToolError("That slot is taken. Offer the caller another time.")
        Traceback (most recent call last):
        ...
        voicehooks.core.exceptions.ToolError: That slot is taken. Offer the caller another time.
    """


class StoreError(VoiceHooksError):
    """The duplicate-delivery store failed or did not answer in time."""


class QueueError(VoiceHooksError):
    """The durable queue's Redis could not take or give out entries (down, slow, full)."""


class QueueFull(QueueError):
    """The stream is at ``max_length``: adding more would let Redis trim unhandled work."""


class CallStateFull(VoiceHooksError):
    """A write would take a call's ``CallState`` past its size bound; nothing was changed."""
