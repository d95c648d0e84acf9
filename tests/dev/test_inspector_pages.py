"""The inspector's pages for the odd deliveries: no body, not JSON, no answer, many logs."""

from __future__ import annotations

import html

import pytest

from voicehooks.dev.inspector.pages import deliveries_fragment, delivery_page
from voicehooks.dev.inspector.store import Entry
from voicehooks.observe import Delivery


def page(entry: Entry, reveal: bool = False) -> str:
    return html.unescape(delivery_page(entry, reveal=reveal, replays=[]))


def entry(body: bytes | None, answer: bytes = b"", event: str | None = None) -> Entry:
    delivery = Delivery([(b"content-type", b"application/json")])
    delivery.body, delivery.answer, delivery.event_type = body, answer, event
    return Entry(7, delivery)


def test_a_request_whose_body_never_arrived_cannot_be_replayed() -> None:
    shown = page(entry(None))
    assert "(the body never arrived)" in shown
    assert "Nothing to replay" in shown
    assert "(none)" in shown  # no answer


@pytest.mark.parametrize(("reveal", "shown"), [(False, "(not JSON; hidden)"), (True, "Sanne +316")])
def test_a_body_that_is_not_json_is_hidden_until_asked(reveal: bool, shown: str) -> None:
    assert shown in page(entry(b"Sanne +316", b"not json either"), reveal)


def test_a_replay_without_its_original_and_a_long_log() -> None:
    replayed = entry(b"{}", b'{"a": "+31655018342"}', "status-update")
    replayed.delivery.is_replay = True
    replayed.logs = ["INFO    voicehooks: one"]
    replayed.left_out = 3
    shown = page(replayed)
    assert "<dt>Replay</dt><dd>yes</dd>" in shown
    assert "… 3 more lines left out" in shown
    assert '"a": "+31•••••••42"' in shown
    assert '"a": "+31655018342"' in page(replayed, reveal=True)
    assert "answer (not" not in shown
    assert "not json" in page(entry(b"{}", b"not json", "status-update"))


@pytest.mark.parametrize("call_id", ["call-+31-6-5501-8342", "call (065) 501-8342"])
def test_a_call_id_with_separators_is_masked_on_the_index_and_the_delivery_page(
    call_id: str,
) -> None:
    shown = entry(b'{"message": {}}', event="status-update")
    shown.delivery.call_id = call_id
    for text in (deliveries_fragment([shown]), page(shown)):
        assert "5501" not in text
        assert "501-8342" not in text
    assert call_id in html.unescape(page(shown, reveal=True))
