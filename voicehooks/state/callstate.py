"""``CallState``: a small key-value store that lives as long as one call.

Tools and handlers of one call ask for it by annotation, like ``LiveCall``, and share it
across deliveries, processes, hosts and durable workers through the app's store: the customer
the first tool found, a cart, the booking made. Values are anything msgspec encodes; ``get``
decodes into the type it is given.

It is bounded: a call's names and encoded values together take at most ``max_bytes`` (64 KiB
by default; ``CallStateFull`` past it, nothing changed), every write pushes its expiry
``ttl_seconds`` further out, and it is cleared once every ``end-of-call-report`` handler of
the call has finished (the dispatcher counts them, in whichever process each ran). The call
id is hashed into its store key, and nothing here logs a name or a value.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar, overload

import msgspec

from voicehooks.core.events import call_scope
from voicehooks.core.exceptions import CallStateFull
from voicehooks.core.injection import injectable

from .stores import DeliveryStore

__all__ = ["MAX_BYTES", "TTL_SECONDS", "CallState", "call_scope"]

T = TypeVar("T")

MAX_BYTES: Final = 64 * 1024
"""The default bound of one call's state: names and encoded values together."""

TTL_SECONDS: Final = 3 * 3600.0
"""The default time a call's state is kept after its last write."""

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode


@injectable
class CallState:
    """The key-value state of the call a tool or handler serves; annotate a parameter with it.

    Every method is a coroutine that goes to the app's store (in memory, or Redis shared by
    every worker and host). Values must be msgspec-encodable.

    Args:
        store: The app's store.
        call_id: The call this state belongs to.
        max_bytes: The bound on names and encoded values together.
        ttl_seconds: How long the state is kept after its last write.

    Examples:
        >>> from voicehooks import CallState, VoiceHooks
        >>> app = VoiceHooks(verify_signatures=False)
        >>> @app.tool
        ... async def find_customer(phone: str, state: CallState) -> str:
        ...     '''Find the customer calling.'''
        ...     await state.set("customer_id", 42)
        ...     return "found"
    """

    __slots__ = ("_key", "max_bytes", "store", "ttl_seconds")

    def __init__(
        self,
        store: DeliveryStore,
        call_id: str,
        *,
        max_bytes: int = MAX_BYTES,
        ttl_seconds: float = TTL_SECONDS,
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._key = "state:" + call_scope(call_id)

    @overload
    async def get(self, name: str) -> Any: ...
    @overload
    async def get(self, name: str, type: type[T]) -> T | None: ...
    @overload
    async def get(self, name: str, type: type[T], default: T) -> T: ...
    async def get(self, name: str, type: Any = Any, default: Any = None) -> Any:
        """The value of ``name`` decoded as ``type`` (JSON types without one), or ``default``.

        Raises:
            msgspec.ValidationError: The stored value does not fit ``type``.
            StoreError: The store failed.
        """
        raw = (await self.store.get_fields(self._key)).get(name)
        if raw is None:
            return default
        if type is Any:
            return _decode_any(raw)
        return msgspec.json.decode(raw, type=type)

    async def items(self) -> dict[str, Any]:
        """Every name and its value (as JSON types)."""
        fields = await self.store.get_fields(self._key)
        return {name: _decode_any(raw) for name, raw in fields.items()}

    async def set(self, name: str, value: Any) -> None:
        """Set ``name`` to ``value`` and keep the state ``ttl_seconds`` longer.

        Raises:
            CallStateFull: The state would take more than ``max_bytes``.
            TypeError: ``value`` cannot be encoded, or ``name`` is empty or starts with NUL.
            StoreError: The store failed.
        """
        _check(name)
        encoded = _encode(value)
        if not await self.store.put_field(
            self._key, name, encoded, self.ttl_seconds, self.max_bytes
        ):
            raise CallStateFull(
                f"call state is limited to {self.max_bytes} bytes: {name!r} "
                f"({len(encoded)} bytes) does not fit. Keep ids in it, not whole records, "
                "or delete what the call no longer needs"
            )

    async def delete(self, name: str) -> None:
        """Remove ``name`` (nothing happens if it is not set)."""
        _check(name)
        await self.store.put_field(self._key, name, None, self.ttl_seconds, self.max_bytes)

    async def clear(self) -> None:
        """Remove everything; the dispatcher does this after the end-of-call-report."""
        await self.store.forget(self._key)


def _check(name: str) -> None:
    if not name or name.startswith("\0"):
        raise TypeError("a call state name must be a non-empty string not starting with NUL")
