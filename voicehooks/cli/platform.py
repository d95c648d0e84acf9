"""The platform's API from the command line: one client per command, each failure one line.

``call(fetch, action=...)`` runs one exchange with a ``PlatformClient`` made for a command
line (10 s an attempt, 30 s a request, retries as the client does them), and turns every
failure into a ``PlatformError`` (exit code 2) that says in one line what happened and what
to do: a refused key, an unknown id, a conflict, the rate limit and when to come back, a
network that does not answer. Never a traceback; never the key or a secret: the platform's
own error text is shown only with every secret the command holds replaced by ``[set]``.

A test passes its own client (``FakePlatform.client()``) as the command's context object:
``CliRunner().invoke(main, [...], obj=platform.client())``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
import click

from voicehooks.core import environment
from voicehooks.core.exceptions import ConfigurationError
from voicehooks.live.api import PlatformAPIError, PlatformClient, RateLimited, Unauthorized

__all__ = ["PlatformError", "call", "explain"]

T = TypeVar("T")

_DETAIL_CHARS = 200


class PlatformError(click.ClickException):
    """The platform refused or could not be reached; exit code 2 (nothing was done)."""

    exit_code = 2


def call(
    exchange: Callable[[PlatformClient], Awaitable[T]],
    *,
    action: str,
    secrets: Sequence[str | None] = (),
) -> T:
    """Run ``exchange`` with a client; ``action`` names it in errors ("read assistant 'a'").

    Raises:
        PlatformError: No key, no httpx, or the platform refused or did not answer.
    """
    context = click.get_current_context(silent=True)
    given = context.find_object(PlatformClient) if context is not None else None
    # A command line can wait longer than a live call: one generous attempt budget.
    api = given or PlatformClient(timeout_seconds=10.0, deadline_seconds=30.0)

    async def run() -> T:
        async with api:
            return await exchange(api)

    try:
        return anyio.run(run)
    except ConfigurationError as exc:
        raise PlatformError(f"cannot {action}: {exc}") from None
    except PlatformAPIError as exc:
        raise PlatformError(explain(exc, action, api.base_url, secrets)) from None


def explain(
    error: PlatformAPIError, action: str, base_url: str, secrets: Sequence[str | None] = ()
) -> str:
    """One line: what ``action`` ran into and what to do about it."""
    status = error.status
    detail = _scrubbed(error.detail, secrets)
    if isinstance(error, Unauthorized):
        reason = (
            "the API key may not do this (403): use a key of the assistant's organization"
            if status == 403
            else f"the platform refused the API key (401): check {environment.API_KEY} "
            f"(or {environment.API_KEY_FILE})"
        )
    elif isinstance(error, RateLimited):
        wait = error.retry_after_seconds
        when = f"in {wait:g} s" if wait is not None else "in a minute"
        reason = f"rate limited (429): the key's requests per minute are used up; try again {when}"
    elif status == 404:
        reason = "not found (404): check the id, and that the API key is of its organization"
    elif status == 409:
        reason = f"conflict (409){': ' + detail if detail else ''}; look at it and run again"
    elif status in (400, 422):
        reason = f"the platform refused it ({status}){': ' + detail if detail else ''}"
    elif status is None:
        cause = str(error).rsplit(": ", 1)[-1]
        reason = (
            f"cannot reach the platform at {base_url} ({cause}): check the network and "
            f"{environment.API_URL}"
        )
    elif status >= 500:
        reason = f"the platform failed ({status}); try again later"
    else:
        reason = f"the platform answered {status}{': ' + detail if detail else ''}"
    return f"cannot {action}: {reason}"


def _scrubbed(detail: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        if secret:
            detail = detail.replace(secret, "[set]")
    detail = " ".join(detail.split())
    return detail[:_DETAIL_CHARS] + ("..." if len(detail) > _DETAIL_CHARS else "")
