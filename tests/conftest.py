"""Shared fixtures: the anyio backend, secrets, and a real ``voicehooks run`` on a free port."""

from __future__ import annotations

import pytest

from tests.servers import free_port, running_server  # noqa: F401  (re-exported for tests)

SECRET = "whsec_voicehooks_test_secret"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """The test secret, also exported as VOICEHOOKS_SECRET."""
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    return SECRET
