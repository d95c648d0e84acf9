"""``RecentDeliveries``: a bounded ring of deliveries, their log lines, and live watchers."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicehooks.dev.inspector.store import MAX_LOG_LINES, MAX_WATCHERS, RecentDeliveries
from voicehooks.observe import Delivery

pytestmark = pytest.mark.anyio


def make_delivery(*headers: tuple[bytes, bytes]) -> Delivery:
    delivery = Delivery([(b"content-type", b"application/json"), *headers])
    delivery.body = b'{"message": {}}'
    delivery.event_type = "status-update"
    delivery.call_id = "c-1"
    delivery.status = 200
    return delivery


@pytest.fixture
def recent() -> Iterator[RecentDeliveries]:
    store = RecentDeliveries(capacity=3)
    store.capture_logs()
    yield store
    store.stop_capturing_logs()


def handle(recent: RecentDeliveries, delivery: Delivery, *lines: str) -> None:
    """One delivery in its own task context, logging ``lines`` while it is handled."""

    def run() -> None:
        recent.delivery_started(delivery)
        for line in lines:
            logging.getLogger("voicehooks").info("%s", line)
        recent.delivery_answered(delivery)

    contextvars.copy_context().run(run)


def test_the_oldest_delivery_is_forgotten_past_the_capacity(recent: RecentDeliveries) -> None:
    for _ in range(5):
        handle(recent, make_delivery())
    assert [entry.id for entry in recent.newest_first()] == [5, 4, 3]
    assert recent.get(2) is None
    assert recent.get(3) is not None


def test_log_lines_belong_to_the_delivery_that_logged_them(
    recent: RecentDeliveries, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        handle(recent, make_delivery(), "first")
        handle(recent, make_delivery(), "second")
        logging.getLogger("voicehooks").info("outside any delivery")
    newest, oldest = recent.newest_first()
    assert oldest.logs == ["INFO    voicehooks: first"]  # once, though it reached two handlers
    assert newest.logs == ["INFO    voicehooks: second"]


def test_log_lines_are_bounded_per_delivery(
    recent: RecentDeliveries, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        handle(recent, make_delivery(), *(f"line {n}" for n in range(MAX_LOG_LINES + 5)))
    (entry,) = recent.newest_first()
    assert len(entry.logs) == MAX_LOG_LINES
    assert entry.left_out == 5


def test_a_replay_names_the_delivery_it_replays(recent: RecentDeliveries) -> None:
    handle(recent, make_delivery())
    replayed = make_delivery((b"x-voicehooks-replay-of", b"1"), (b"x-voicehooks-replay", b"1"))
    handle(recent, replayed)
    assert [entry.id for entry in recent.replays_of(1)] == [2]
    assert recent.newest_first()[0].signed_headers == {
        "content-type": "application/json",
        "x-voicehooks-replay": "1",
    }


def test_a_delivery_started_before_the_store_was_installed_is_still_kept() -> None:
    recent = RecentDeliveries()
    recent.delivery_answered(make_delivery())
    assert [entry.id for entry in recent.newest_first()] == [1]


async def test_watchers_hear_of_each_new_delivery_and_leave_cleanly(
    recent: RecentDeliveries,
) -> None:
    watching = recent.watch()
    assert watching is not None
    with watching as ids:
        handle(recent, make_delivery())
        handle(recent, make_delivery())
        assert [await ids.receive(), await ids.receive()] == [1, 2]
    handle(recent, make_delivery())  # nobody watches any more: nothing to tell, no error


async def test_a_watcher_that_does_not_keep_up_is_disconnected(recent: RecentDeliveries) -> None:
    watching = recent.watch()
    assert watching is not None
    with watching as ids:
        for _ in range(65):  # one more than its buffer
            handle(recent, make_delivery())
        received = [item async for item in ids]  # ends: the store closed it
    assert received == list(range(1, 65))


async def test_the_number_of_watchers_is_bounded(recent: RecentDeliveries) -> None:
    with contextlib.ExitStack() as stack:
        for _ in range(MAX_WATCHERS):
            watching = recent.watch()
            assert watching is not None
            stack.enter_context(watching)
        assert recent.watch() is None
        recent.close_watchers()  # at shutdown: every page's stream ends
    watching = recent.watch()
    assert watching is not None
    with watching:
        pass


def test_a_bad_log_format_is_captured_as_written(
    recent: RecentDeliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run() -> None:
        delivery = make_delivery()
        recent.delivery_started(delivery)
        logging.getLogger("voicehooks").error("%d apples", "many")
        recent.delivery_answered(delivery)

    monkeypatch.setattr(logging, "raiseExceptions", False)  # other handlers stay quiet too
    contextvars.copy_context().run(run)
    assert recent.newest_first()[0].logs == ["ERROR   voicehooks: %d apples"]


@pytest.mark.parametrize(
    ("said", "shown"),
    [
        ("caller 0655018342 wants a callback", "caller 065•••••42 wants a callback"),
        ("national (065) 501-8342", "national (06•••••••••42"),
        ("dialled tel:+31655018342", "dialled tel:+31•••••••42"),
        ("paid with 4111 1111 1111 1111", "paid with [card]"),
        ("refund to NL91ABNA0417164300", "refund to [iban]"),
        ("order WO-2291 at 9:30", "order WO-2291 at 9:30"),
    ],
)
def test_the_apps_own_log_lines_are_masked_when_captured(
    recent: RecentDeliveries, caplog: pytest.LogCaptureFixture, said: str, shown: str
) -> None:
    """The app's ``logging.getLogger(__name__)`` lines, as the page and the history show them."""
    with caplog.at_level(logging.INFO):
        handle(recent, make_delivery(), said)
    (entry,) = recent.newest_first()
    assert entry.logs == [f"INFO    voicehooks: {shown}"]


def test_the_history_file_holds_the_masked_log_lines(
    recent: RecentDeliveries, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.INFO):
        handle(recent, make_delivery(), "caller 0655018342, card 4111 1111 1111 1111")
    assert recent.newest_first()[0].logs
    recent.save(tmp_path / "inspector.jsonl")
    text = (tmp_path / "inspector.jsonl").read_text()
    assert "0655018342" not in text
    assert "4111" not in text
