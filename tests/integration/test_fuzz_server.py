"""The fuzz property over a real socket: ``voicehooks run`` (uvicorn, httptools) serves the
fuzz app of ``tests/helpers/fuzzing.py``, and stdlib ``http.client`` sends it hostile requests.

Smaller budget than in-process (each example is a TCP connection); the same derandomized
strategies. Header values keep to what HTTP allows on the wire (visible ASCII, space, tab and
obs-text bytes 0x80-0xff): a request with a CR, LF or NUL in a header is refused by the HTTP
parser before the app sees it, which is uvicorn's business, not ours.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.fuzzing import (
    SECRET,
    deliveries,
    fuzz_settings,
    mutated_bodies,
    requests,
    signed,
)
from tests.helpers.servers import Server, running_server

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("VOICEHOOKS_FUZZ_SOCKET_EXAMPLES", "50"))
SOCKET_TIMEOUT_SECONDS = 10.0

OVER_SOCKET = fuzz_settings(EXAMPLES)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("fuzz-server")
    with running_server(
        "tests/helpers/fuzzing.py:app", tmp_path, env={"VOICEHOOKS_SECRET": SECRET}
    ) as running:
        yield running
    log = running.log()
    assert "Traceback" not in log
    assert "internal error" not in log


def exchange(
    server: Server,
    method: str,
    chunks: Sequence[bytes],
    headers: Sequence[tuple[str, str]],
    *,
    chunked: bool = False,
) -> tuple[int, str, bytes]:
    """One request on a fresh connection; the socket timeout bounds a hang."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=SOCKET_TIMEOUT_SECONDS
    )
    try:
        connection.putrequest(method, "/", skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value.encode("latin-1"))
        body = b"".join(chunks)
        if chunked:
            connection.putheader("transfer-encoding", "chunked")
        else:
            connection.putheader("content-length", str(len(body)))
        connection.endheaders()
        for chunk in chunks:
            if chunked and chunk:
                connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            elif not chunked:
                connection.send(chunk)
        if chunked:
            connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        connection.close()


def check(status: int, content_type: str, body: bytes) -> Any:
    """The property: a 2xx or a 4xx, a JSON object, an error string with a 4xx."""
    assert 200 <= status < 300 or 400 <= status < 500, (status, body)
    assert content_type == "application/json", (status, content_type, body)
    payload = msgspec.json.decode(body)
    assert isinstance(payload, dict)
    if status >= 400:
        assert isinstance(payload.get("error"), str)
        assert payload["error"]
    return payload


def wire_safe(value: str) -> str:
    """Keep the characters HTTP allows in a field value: VCHAR, SP, HTAB and obs-text."""
    return "".join(c for c in value if c == "\t" or " " <= c <= "~" or "\x80" <= c <= "\xff")


@OVER_SOCKET
@given(delivery=deliveries(), chunked=st.booleans(), data=st.data())
def test_valid_deliveries_over_a_socket_are_answered_200(
    server: Server, delivery: dict[str, Any], chunked: bool, data: st.DataObject
) -> None:
    body = msgspec.json.encode(delivery)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=4)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    status, content_type, answer = exchange(server, "POST", chunks, signed(body), chunked=chunked)
    check(status, content_type, answer)
    assert status == 200


@OVER_SOCKET
@given(mutated=mutated_bodies())
def test_broken_bodies_over_a_socket_never_give_a_5xx(
    server: Server, mutated: tuple[bytes, dict[str, Any] | None]
) -> None:
    body, _ = mutated
    check(*exchange(server, "POST", [body], signed(body)))


@OVER_SOCKET
@given(body=st.binary(max_size=4096))
def test_arbitrary_bytes_over_a_socket_never_give_a_5xx(server: Server, body: bytes) -> None:
    check(*exchange(server, "POST", [body], signed(body)))


@OVER_SOCKET
@given(request=requests())
def test_odd_headers_over_a_socket_never_give_a_5xx(
    server: Server, request: tuple[str, list[bytes], list[tuple[str, str]]]
) -> None:
    method, chunks, headers = request
    sendable = [(name, wire_safe(value)) for name, value in headers if name != "content-length"]
    check(*exchange(server, method.upper(), chunks, sendable))
