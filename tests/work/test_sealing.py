"""The sealed envelope of queue entries: round trips, rotation, tampering, keys and their errors.

Against a real Redis and a real worker: tests/work/test_durable.py."""

from __future__ import annotations

import base64
import hashlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.redis_server import RedisServer, running_redis
from voicehooks import Background, Duplicates, EndOfCallReport, MemoryStore, VoiceHooks
from voicehooks.core.environment import QUEUE_KEY, QUEUE_KEY_FILE, QUEUE_URL
from voicehooks.core.exceptions import ConfigurationError
from voicehooks.testing import WebhookClient, end_of_call_report
from voicehooks.work.durable import QueuedJobs
from voicehooks.work.jobs import UnreadableJob
from voicehooks.work.queue import RedisQueue
from voicehooks.work.sealing import Sealer, new_key, sealed_with, sealer_for
from voicehooks.work.worker import Worker

pytestmark = pytest.mark.anyio

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
TEXT_A = base64.urlsafe_b64encode(KEY_A).decode().rstrip("=")
TEXT_B = base64.urlsafe_b64encode(KEY_B).decode().rstrip("=")
JOB = b'\x95\xc4\x20{"message": {"summary": "card 4111 1111 1111 1111"}}'


def id_of(key: bytes) -> str:
    return hashlib.sha256(key).digest()[:8].hex()


KEY_A_ID = bytes.fromhex(id_of(KEY_A))
KEY_B_ID = bytes.fromhex(id_of(KEY_B))


def test_a_sealed_entry_is_the_header_a_nonce_and_the_ciphertext_and_opens_again() -> None:
    sealer = Sealer([KEY_A])
    sealed = sealer.seal(JOB)
    assert sealed[:2] == b"\xc1\x01"
    assert sealed[2:10].hex() == id_of(KEY_A) == sealed_with(sealed)
    assert len(sealed) == len(JOB) + 38  # header 10, nonce 12, tag 16
    assert b"4111" not in sealed
    assert b"summary" not in sealed
    assert sealer.open(sealed) == JOB
    assert sealer.seal(JOB)[10:22] != sealed[10:22]  # a fresh nonce every time


@given(st.binary(max_size=4096))
def test_every_byte_string_round_trips(data: bytes) -> None:
    sealer = Sealer([KEY_A])
    assert sealer.open(sealer.seal(data)) == data


def test_without_a_key_nothing_is_sealed_and_plain_entries_read_as_they_are() -> None:
    plain = Sealer()
    assert not plain.sealing
    assert plain.seal(JOB) is JOB
    assert plain.open(JOB) == JOB
    assert sealed_with(JOB) is None
    assert Sealer([KEY_A]).open(JOB) == JOB  # written before the key was set: still read


def test_the_first_key_seals_and_every_key_opens_for_a_rotation() -> None:
    old = Sealer([KEY_A]).seal(JOB)
    rotated = Sealer([KEY_B, KEY_A])
    assert rotated.open(old) == JOB
    new = rotated.seal(JOB)
    assert sealed_with(new) == id_of(KEY_B)
    assert Sealer([KEY_B]).open(new) == JOB
    with pytest.raises(UnreadableJob, match=f"sealed with queue key {id_of(KEY_B)}, which is not"):
        Sealer([KEY_A]).open(new)


def test_without_the_key_a_sealed_entry_says_which_key_it_needs() -> None:
    sealed = Sealer([KEY_A]).seal(JOB)
    with pytest.raises(UnreadableJob, match=f"{id_of(KEY_A)}, and no queue key is set"):
        Sealer().open(sealed)


@pytest.mark.parametrize(
    ("position", "why"),
    [
        (1, "envelope version 0"),  # the version byte
        (2, "not among this process's keys"),  # the key id
        (12, "does not authenticate"),  # the nonce
        (30, "does not authenticate"),  # the ciphertext
        (-1, "does not authenticate"),  # the tag
    ],
)
def test_a_changed_byte_anywhere_makes_the_entry_unreadable(position: int, why: str) -> None:
    sealed = bytearray(Sealer([KEY_A]).seal(JOB))
    sealed[position] ^= 0x01
    with pytest.raises(UnreadableJob, match=why):
        Sealer([KEY_A]).open(bytes(sealed))


def test_a_cut_entry_is_unreadable() -> None:
    sealed = Sealer([KEY_A]).seal(JOB)
    with pytest.raises(UnreadableJob, match="cut short"):
        Sealer([KEY_A]).open(sealed[:37])
    with pytest.raises(UnreadableJob, match="does not authenticate"):
        Sealer([KEY_A]).open(sealed[:-1])


@pytest.mark.parametrize(
    "text",
    [
        TEXT_A,
        TEXT_A + "=",  # padded
        f"  {TEXT_A} ,",  # spaces, a trailing comma
        base64.b64encode(KEY_A).decode(),  # standard base64
    ],
)
def test_keys_are_base64url_with_or_without_padding(text: str) -> None:
    assert Sealer.parse(text, QUEUE_KEY).key_ids == (id_of(KEY_A),)


@pytest.mark.parametrize(
    ("text", "which"),
    [
        ("not a key at all!", QUEUE_KEY),
        ("c2hvcnQ", QUEUE_KEY),  # base64 of 5 bytes
        (base64.b64encode(bytes(48)).decode(), QUEUE_KEY),  # 48 bytes
        (f"{TEXT_A},tooshort", f"key 2 of 2 in {QUEUE_KEY}"),
    ],
)
def test_a_malformed_key_names_the_variable_and_never_the_key(text: str, which: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Sealer.parse(text, QUEUE_KEY)
    message = str(raised.value)
    assert message.startswith(f"{which} is not a queue key")
    assert "voicehooks queue new-key" in message
    for part in text.split(","):
        assert part.strip() not in message


def test_a_key_setting_without_a_key_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="holds no key"):
        Sealer.parse(" , ", QUEUE_KEY)


def test_a_missing_cryptography_package_names_the_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'voicehooks\[privacy\]'"):
        Sealer.parse(TEXT_A, QUEUE_KEY)
    assert not Sealer().sealing  # without a key, nothing needs it


def test_new_keys_are_fresh_32_byte_keys() -> None:
    first, second = new_key(), new_key()
    assert first != second
    assert len(first) == 43
    assert len(Sealer.parse(first, QUEUE_KEY).key_ids) == 1


def test_no_key_is_shown_by_a_repr() -> None:
    assert TEXT_A not in repr(Sealer.parse(TEXT_A, QUEUE_KEY))
    assert repr(Sealer([KEY_A])) == f"Sealer(key_ids=('{id_of(KEY_A)}',))"
    background = Background(queue_key=TEXT_A)
    assert TEXT_A not in repr(background)


def test_background_checks_its_key_when_made() -> None:
    with pytest.raises(ConfigurationError, match=r"^Background\(queue_key=...\) is not a queue"):
        Background(queue_key="nope")


def test_the_key_comes_from_the_setting_else_the_variable_else_its_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(QUEUE_KEY, raising=False)
    monkeypatch.delenv(QUEUE_KEY_FILE, raising=False)
    assert not sealer_for(None).sealing
    key_file = tmp_path / "queue.key"
    key_file.write_text(f"{TEXT_B}\n{TEXT_A}\n")
    monkeypatch.setenv(QUEUE_KEY_FILE, str(key_file))
    assert sealer_for(None).key_ids == (id_of(KEY_B), id_of(KEY_A))
    monkeypatch.setenv(QUEUE_KEY, TEXT_A)
    assert sealer_for(None).key_ids == (id_of(KEY_A),)
    assert sealer_for(TEXT_B).key_ids == (id_of(KEY_B),)
    monkeypatch.setenv(QUEUE_KEY, "garbage")
    with pytest.raises(ConfigurationError, match=f"^{QUEUE_KEY} is not a queue key"):
        sealer_for(None)
    monkeypatch.delenv(QUEUE_KEY)
    monkeypatch.setenv(QUEUE_KEY_FILE, str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=f"{QUEUE_KEY_FILE}=.* cannot be read"):
        sealer_for(None)


# -- against a real Redis: the receiver seals, the worker opens ------------------------------

CARD = "4111 1111 1111 1111"
PHONE = "+31655018342"
SUMMARY = "The caller paid the repair of order WO-2291 by card"
SECRET = "whsec_sealing_tests"


class Reports:
    def __init__(self) -> None:
        self.summaries: list[str] = []


MakeApp = Callable[..., tuple[VoiceHooks, Reports]]


@pytest.fixture
async def make_app(redis_server: RedisServer) -> AsyncIterator[MakeApp]:
    """Apps on one Redis: a receiver and workers, each with its own queue key (or none)."""
    queues: list[RedisQueue] = []

    def make(queue_key: str | None = None, **options: Any) -> tuple[VoiceHooks, Reports]:
        queue = RedisQueue.from_url(redis_server.url, **options)
        queues.append(queue)
        app = VoiceHooks(
            secret=SECRET,
            background=Background(queue=queue, queue_key=queue_key),
            duplicates=Duplicates(store=MemoryStore()),
        )
        seen = Reports()

        @app.on("end-of-call-report")
        async def save(report: EndOfCallReport) -> None:
            seen.summaries.append(report.summary or "")

        return app, seen

    yield make
    for queue in queues:
        await queue.aclose()


def report(call_id: str) -> dict[str, Any]:
    return end_of_call_report(
        call_id=call_id,
        customer_number=PHONE,
        summary=f"{SUMMARY} {CARD}, and asked to be called back on {PHONE}.",
    )


async def receive(app: VoiceHooks, *call_ids: str) -> None:
    async with WebhookClient(app, secret=SECRET) as client:
        for call_id in call_ids:
            assert (await client.post(report(call_id))).status_code == 200


async def work(app: VoiceHooks, until: Callable[[], Awaitable[bool]]) -> None:
    """Run ``voicehooks worker``'s loop over ``app`` until ``until()`` holds."""
    assert app.queue is not None
    assert app.durable is not None
    dispatcher = app.dispatcher
    run = QueuedJobs(dispatcher.run_job, dispatcher.deduplicator, sealer=app.durable.sealer)
    worker = Worker(app.queue, run, tasks=app.tasks, read_block_seconds=0.1)
    stop = anyio.Event()
    async with app.lifespan(), anyio.create_task_group() as group:
        group.start_soon(worker.serve, stop)
        with anyio.fail_after(20):
            while not await until():
                await anyio.sleep(0.05)
        stop.set()


async def raw_redis(app: VoiceHooks) -> bytes:
    """Every byte the queue's streams hold in Redis: entries and dead letters, fields and all."""
    assert isinstance(app.queue, RedisQueue)
    held = b""
    for stream in (app.queue.stream, app.queue.dead_stream):
        entries: Any = await app.queue.client.xrange(stream)
        for _, fields in entries:
            held += b"".join(key + value for key, value in fields.items())
    return held


def holds_personal_data(held: bytes) -> bool:
    return any(
        text.encode() in held
        for text in (CARD, PHONE, PHONE[1:], SUMMARY, "WO-2291", "end-of-call-report")
    )


async def test_entries_in_redis_are_sealed_and_a_worker_with_the_key_runs_them(
    make_app: MakeApp,
) -> None:
    receiver, _ = make_app(TEXT_A)
    worker, seen = make_app(TEXT_A)
    await receive(receiver, "sealed-1", "sealed-2")
    held = await raw_redis(receiver)
    assert held.count(b"\xc1\x01" + KEY_A_ID) == 2
    assert not holds_personal_data(held)

    async def both_ran() -> bool:
        return len(seen.summaries) == 2

    await work(worker, both_ran)
    assert seen.summaries == [f"{SUMMARY} {CARD}, and asked to be called back on {PHONE}."] * 2
    assert (await receiver.queue.stats()).length == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("worker_key", "reason"),
    [
        (None, f"sealed with queue key {id_of(KEY_A)}, and no queue key is set"),
        (TEXT_B, f"sealed with queue key {id_of(KEY_A)}, which is not among"),
    ],
)
async def test_a_worker_without_the_key_dead_letters_the_entry_at_once_and_keeps_it_sealed(
    make_app: MakeApp, worker_key: str | None, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    receiver, _ = make_app(TEXT_A)
    worker, seen = make_app(worker_key)
    await receive(receiver, "sealed-3")
    assert worker.queue is not None

    async def buried() -> bool:
        return (await worker.queue.stats()).dead == 1  # type: ignore[union-attr]

    with caplog.at_level(logging.ERROR, "voicehooks"):
        await work(worker, buried)
    assert seen.summaries == []
    (letter,) = await worker.queue.dead()
    assert letter.reason.startswith(f"unreadable: {reason}")
    assert letter.attempts == 1  # no retry: no attempt of this worker could read it
    assert not holds_personal_data(await raw_redis(worker))  # the dead letter is sealed too
    assert CARD not in caplog.text
    assert PHONE not in caplog.text

    # With the key given to the worker, the requeued letter runs: requeue moves it sealed.
    assert await worker.queue.requeue() == 1
    assert not holds_personal_data(await raw_redis(worker))
    fixed, fixed_seen = make_app(f"{TEXT_B},{TEXT_A}")

    async def ran() -> bool:
        return bool(fixed_seen.summaries)

    await work(fixed, ran)
    assert len(fixed_seen.summaries) == 1


async def test_after_a_rotation_entries_sealed_with_the_old_key_stay_readable(
    make_app: MakeApp,
) -> None:
    old_receiver, _ = make_app(TEXT_A)
    new_receiver, _ = make_app(f"{TEXT_B},{TEXT_A}")
    await receive(old_receiver, "before-rotation")
    await receive(new_receiver, "after-rotation")
    held = await raw_redis(new_receiver)
    assert (held.count(b"\xc1\x01" + KEY_A_ID), held.count(b"\xc1\x01" + KEY_B_ID)) == (1, 1)
    worker, seen = make_app(f"{TEXT_B},{TEXT_A}")

    async def both_ran() -> bool:
        return len(seen.summaries) == 2

    await work(worker, both_ran)


async def test_a_tampered_entry_is_dead_lettered_and_the_worker_goes_on(
    make_app: MakeApp,
) -> None:
    receiver, _ = make_app(TEXT_A)
    worker, seen = make_app(TEXT_A)
    assert isinstance(receiver.queue, RedisQueue)
    await receive(receiver, "tampered", "intact")
    # Someone with write access to Redis changes one byte of the first entry's ciphertext.
    entries: Any = await receiver.queue.client.xrange(receiver.queue.stream, count=1)
    ((first, fields),) = entries
    damaged = bytearray(fields[b"job"])
    damaged[40] ^= 0x20
    await receiver.queue.client.xdel(receiver.queue.stream, first)
    await receiver.queue.client.xadd(receiver.queue.stream, {"job": bytes(damaged)})

    async def settled() -> bool:
        stats = await worker.queue.stats()  # type: ignore[union-attr]
        return stats.dead == 1 and stats.length == 0

    await work(worker, settled)
    assert len(seen.summaries) == 1  # the intact one
    (letter,) = await worker.queue.dead()  # type: ignore[union-attr]
    assert letter.reason == (
        f"unreadable: sealed with queue key {id_of(KEY_A)}, but it does not authenticate: "
        "damaged or tampered with"
    )


async def test_plain_entries_from_before_the_key_are_read_with_one_warning(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    plain_receiver, _ = make_app(None)
    await receive(plain_receiver, "plain-1", "plain-2")
    assert holds_personal_data(await raw_redis(plain_receiver))  # what a key keeps out
    worker, seen = make_app(TEXT_A)

    async def both_ran() -> bool:
        return len(seen.summaries) == 2

    with caplog.at_level(logging.WARNING, "voicehooks"):
        await work(worker, both_ran)
    assert caplog.text.count("is not sealed: written before the queue key was set") == 1


async def test_startup_without_a_key_warns_once_that_entries_are_in_clear_text(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    plain, _ = make_app(None)
    sealed, _ = make_app(TEXT_A)
    with caplog.at_level(logging.WARNING, "voicehooks"):
        async with plain.lifespan():
            pass
    warnings = [r for r in caplog.records if "in clear text" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert QUEUE_KEY in warnings[0].getMessage()
    assert "for up to 7 days" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        async with sealed.lifespan():
            pass
    assert "in clear text" not in caplog.text


async def test_nothing_personal_reaches_the_append_only_file_with_a_key(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path, appendonly=True) as redis:
        queue = RedisQueue.from_url(redis.url)
        keyed = VoiceHooks(
            secret=SECRET,
            background=Background(queue=queue, queue_key=TEXT_A),
            duplicates=Duplicates(store=MemoryStore()),
        )

        @keyed.on("end-of-call-report")
        async def save(report: EndOfCallReport) -> None:
            raise ConnectionError("the CRM is down")

        directory = Path(redis.command[redis.command.index("--dir") + 1])

        async def written_once(present: Callable[[bytes], bool]) -> bytes:
            # With appendfsync everysec Redis may hold a write back while an fsync is still
            # running (up to 2 s on a busy disk): wait for what must be in the file.
            with anyio.fail_after(10):
                while True:
                    held = b"".join(path.read_bytes() for path in sorted(directory.rglob("*.aof")))
                    if present(held):
                        return held
                    await anyio.sleep(0.05)

        await receive(keyed, "on-disk-1")
        (entry,) = await queue.read("w1", 1, 0.01)
        await queue.bury(entry, "ConnectionError")  # a dead letter on disk too
        written = await written_once(lambda held: held.count(b"\xc1\x01" + KEY_A_ID) >= 2)
        assert not holds_personal_data(written)
        plain = VoiceHooks(
            secret=SECRET,
            background=Background(queue=queue),
            duplicates=Duplicates(store=MemoryStore()),
        )
        plain.add_handler("end-of-call-report", save)
        await receive(plain, "on-disk-2")
        await written_once(holds_personal_data)  # without a key, the same file holds them all
        await queue.aclose()


def test_a_malformed_key_in_the_environment_stops_the_app_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(QUEUE_URL, "redis://127.0.0.1:1/0")
    monkeypatch.setenv(QUEUE_KEY, "hunter2hunter2")
    with pytest.raises(ConfigurationError, match=f"^{QUEUE_KEY} is not a queue key") as raised:
        VoiceHooks(secret=SECRET)
    assert "hunter2" not in str(raised.value)
    monkeypatch.delenv(QUEUE_URL)
    VoiceHooks(secret=SECRET)  # no queue: the key seals nothing and is not read
