"""Signed POSTs over one kept-alive connection, for ``simulate`` and ``replay``.

The standard library's ``http.client`` (no extra dependency). One connection serves every
request of a run, so a 30-step scenario over HTTP pays one TCP handshake; a connection the
server closed is opened again once.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from collections.abc import Mapping

import click

from voicehooks.core.signing import sign

__all__ = ["Poster"]


class Poster:
    """POSTs bodies to ``url``, signed with ``secret`` as of now (unsigned when ``None``).

    Raises ``click.ClickException`` (exit 1) when the server cannot be reached.
    """

    def __init__(self, url: str, secret: str | None, timeout_seconds: float = 15.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.BadParameter(
                f"{url!r} is not an http(s) URL; write it like http://127.0.0.1:8000/",
                param_hint="--url",
            )
        self.url = url
        self.secret = secret
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._connection = kind(parts.hostname, parts.port, timeout=timeout_seconds)

    def headers(self, body: bytes, event: str | None) -> dict[str, str]:
        """The platform's headers for ``body``, signed as of now (unsigned without a secret)."""
        return sign(body, self.secret, int(time.time()), event=event)

    def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """Send one request; return the status and the answer's bytes."""
        for attempt in (1, 2):
            try:
                self._connection.request("POST", self._target, body=body, headers=dict(headers))
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._connection.close()  # a kept-alive connection the server dropped
                if attempt == 2:
                    raise click.ClickException(f"{self.url} closed the connection twice") from None
            except OSError as exc:
                self._connection.close()
                raise click.ClickException(
                    f"cannot reach {self.url}: {exc.strerror or exc}. Is the server running "
                    "(`voicehooks dev TARGET`)? Check --url."
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()
