"""Test doubles for the delivery store (``voicehooks.state.stores.DeliveryStore``)."""

from __future__ import annotations

from collections.abc import Sequence


class BrokenStore:
    """A store whose every operation fails, as a store may when its server is gone."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    async def open(self) -> None:
        raise self.error

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        raise self.error

    async def claim_many(self, keys: Sequence[str], ttl_seconds: float) -> list[bool]:
        raise self.error

    async def put_result(self, key: str, result: bytes, ttl_seconds: float) -> None:
        raise self.error

    async def put_results(self, results: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        raise self.error

    async def wait_result(self, key: str, timeout_seconds: float) -> bytes | None:
        raise self.error

    async def release(self, key: str) -> None:
        raise self.error

    async def take_token(self, key: str, capacity: int, window_seconds: float) -> float:
        raise self.error

    async def get_fields(self, key: str) -> dict[str, bytes]:
        raise self.error

    async def put_field(
        self, key: str, name: str, value: bytes | None, ttl_seconds: float, max_bytes: int
    ) -> bool:
        raise self.error

    async def forget(self, key: str) -> None:
        raise self.error

    async def count(self, key: str, ttl_seconds: float) -> int:
        raise self.error

    async def aclose(self) -> None:
        self.closed = True
        raise self.error
