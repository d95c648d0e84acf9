"""``voicehooks queue``: stats, dead letters and requeue against a real redis-server and a
real PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from click.testing import CliRunner

from tests.helpers.paths import FIXTURES, ROOT
from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import free_port, running_server
from voicehooks import sign
from voicehooks.cli import main
from voicehooks.core.environment import QUEUE_KEY, QUEUE_URL
from voicehooks.core.events import decode_delivery
from voicehooks.core.logs import masked
from voicehooks.testing import end_of_call_report
from voicehooks.work.durable import queue_from_url
from voicehooks.work.jobs import Job, encode_job
from voicehooks.work.queue import QueueStats, RedisQueue
from voicehooks.work.sealing import Sealer, new_key

REPORT = (FIXTURES / "end-of-call-report.json").read_bytes()
APP = "tests/apps/durable.py"
SECRET = "whsec_durable_cli_tests"


@pytest.fixture
def runner(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv(QUEUE_URL, backend_url)
    return CliRunner()


def prepare(
    url: str, *, dead: int, waiting: int, report: bytes = REPORT, sealer: Sealer | None = None
) -> list[str]:
    """``dead`` dead letters of ``report`` (the fixture's) and ``waiting`` entries, one held
    by w1; sealed by ``sealer`` when given."""

    async def main() -> list[str]:
        queue = queue_from_url(url)
        await queue.open()
        entry = encode_job(Job(decode_delivery(report), "handler:app:on_report"), 0.0)
        if sealer is not None:
            entry = sealer.seal(entry)
        await queue.enqueue([entry] * dead + [b"not an entry"])
        for held in await queue.read("w0", dead + 1, 0.01):
            await queue.bury(held, "KeyError")
        await queue.enqueue([entry] * waiting)
        await queue.read("w1", 1, 0.01)
        ids = [letter.id for letter in await queue.dead()]
        await queue.aclose()
        return ids

    return anyio.run(main)


def test_stats_shows_the_backlog_the_consumers_and_the_dead_letters(
    runner: CliRunner, backend_url: str
) -> None:
    prepare(backend_url, dead=2, waiting=3)
    result = runner.invoke(main, ["queue", "stats"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(
        r"voicehooks:jobs: 3 entries \(2 unread, 1 in progress\), 3 dead letters \(the oldest "
        r"\d+ s old; kept: at most 10000, for 7 days\)",
        lines[0],
    )
    assert lines[1].split() == ["CONSUMER", "PENDING", "IDLE"]
    # Redis lists every consumer of the group; PostgreSQL knows a worker by what it holds.
    holders = [["w1", "1"]] if backend_url.startswith("postgresql") else [["w0", "0"], ["w1", "1"]]
    assert [line.split()[:2] for line in lines[2:]] == holders
    as_json = json.loads(runner.invoke(main, ["queue", "stats", "--json"]).output)
    assert (as_json["length"], as_json["unread"], as_json["pending"], as_json["dead"]) == (
        3,
        2,
        1,
        3,
    )
    assert [[c["name"], str(c["pending"])] for c in as_json["consumers"]] == holders
    assert (as_json["max_dead"], as_json["max_dead_age_seconds"]) == (10000, 604800)
    assert 0 <= as_json["oldest_dead_seconds"] < 60


def test_stats_reports_the_dead_letter_bounds_of_the_environment(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEHOOKS_QUEUE_MAX_DEAD", "500")
    monkeypatch.setenv("VOICEHOOKS_QUEUE_MAX_DEAD_AGE_SECONDS", "7200")
    result = runner.invoke(main, ["queue", "stats"])
    assert result.exit_code == 0, result.output
    assert result.output.endswith("0 dead letters (kept: at most 500, for 2 hours)\n")
    monkeypatch.setenv("VOICEHOOKS_QUEUE_MAX_DEAD_AGE_SECONDS", "a week")
    result = runner.invoke(main, ["queue", "stats"])
    assert result.exit_code == 1
    assert "VOICEHOOKS_QUEUE_MAX_DEAD_AGE_SECONDS='a week': a number greater than 0" in (
        result.output
    )


CARD = "4111 1111 1111 1111"
IBAN = "NL91 ABNA 0417 1643 00"


def personal_report() -> bytes:
    """A report whose summary and transcript hold a card, an IBAN and a phone number, the card
    spelled over two of the caller's turns."""
    return msgspec.json.encode(
        end_of_call_report(
            call_id="call-personal",
            summary=f"Paid by card {CARD}; refund to {IBAN}.",
            messages=[
                {"role": "user", "content": "my card is four one one one, one one one one"},
                {"role": "assistant", "content": "go on"},
                {"role": "user", "content": "one one one one, one one one one"},
                {"role": "user", "message": "call me on +31 6 55018342"},
            ],
        )
    )


def test_dead_letters_are_listed_with_their_bodies_redacted(
    runner: CliRunner, backend_url: str
) -> None:
    ids = prepare(backend_url, dead=1, waiting=0, report=personal_report())
    result = runner.invoke(main, ["queue", "dead"])
    assert result.exit_code == 0, result.output
    first, body, unreadable, why = result.output.splitlines()
    assert first.startswith(ids[0])
    assert "attempts=1  reason=KeyError  handler:app:on_report  end-of-call-report" in first
    assert first.endswith("call=call-personal  key=none")
    message = json.loads(body)["message"]
    assert message["summary"] == "Paid by card [card]; refund to [iban]."
    assert [turn.get("content", turn.get("message")) for turn in message["messages"]] == [
        "my card is [card]",
        "go on",
        "[card]",
        "call me on [phone]",
    ]
    assert message["customer"]["number"] == "[phone]"
    assert unreadable.endswith("reason=KeyError  ?  ?  call=?  key=none")
    assert why == "  (unreadable: not a voicehooks job)"
    for personal in (CARD, IBAN, "55018342", "four one one one"):
        assert personal not in result.output


def test_raw_dead_letters_show_the_bodies_as_they_are(runner: CliRunner, backend_url: str) -> None:
    report = personal_report()
    prepare(backend_url, dead=1, waiting=0, report=report)
    result = runner.invoke(main, ["queue", "dead", "--raw"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "  " + report.decode()


def test_sealed_dead_letters_are_opened_with_the_key_of_the_environment(
    runner: CliRunner, backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    sealer = Sealer.parse(key, QUEUE_KEY)
    prepare(backend_url, dead=1, waiting=0, report=personal_report(), sealer=sealer)
    without = runner.invoke(main, ["queue", "dead"])
    assert without.exit_code == 0, without.output
    header, body = without.output.splitlines()[:2]
    assert header.endswith(f"?  ?  call=?  key={sealer.key_ids[0]}")
    assert body == (
        f"  (unreadable: sealed with queue key {sealer.key_ids[0]}, and no queue key is set "
        f"({QUEUE_KEY}))"
    )
    monkeypatch.setenv(QUEUE_KEY, f"{new_key()},{key}")  # rotated since: the old key opens it
    opened = runner.invoke(main, ["queue", "dead"])
    assert opened.exit_code == 0, opened.output
    header, body = opened.output.splitlines()[:2]
    assert "end-of-call-report  call=call-personal" in header
    assert json.loads(body)["message"]["summary"] == "Paid by card [card]; refund to [iban]."
    raw = runner.invoke(main, ["queue", "dead", "--raw"])
    assert CARD in raw.output
    monkeypatch.setenv(QUEUE_KEY, "not-a-key")
    bad = runner.invoke(main, ["queue", "dead"])
    assert bad.exit_code == 1
    assert f"{QUEUE_KEY} is not a queue key" in bad.output


def test_new_key_prints_a_fresh_key(runner: CliRunner) -> None:
    first = runner.invoke(main, ["queue", "new-key"])
    second = runner.invoke(main, ["queue", "new-key"])
    assert first.exit_code == second.exit_code == 0
    assert first.output != second.output
    assert len(Sealer.parse(first.output.strip(), QUEUE_KEY).key_ids) == 1


def test_dead_letters_show_call_ids_masked_like_every_other_output(
    runner: CliRunner, backend_url: str
) -> None:
    call_id = "call-_+31612345678_XqaQ"  # the platform's REST ids embed the caller's number
    report = msgspec.json.encode(end_of_call_report(call_id=call_id))
    prepare(backend_url, dead=1, waiting=0, report=report)
    result = runner.invoke(main, ["queue", "dead"])
    assert result.exit_code == 0, result.output
    assert f"call={masked(call_id)}  key=none" in result.output.splitlines()[0]
    assert "31612345678" not in result.output


def test_requeue_by_id_or_all(runner: CliRunner, backend_url: str) -> None:
    ids = prepare(backend_url, dead=2, waiting=0)
    result = runner.invoke(main, ["queue", "requeue", ids[0]])
    assert (result.exit_code, result.output) == (0, "requeued 1 dead letter\n")
    result = runner.invoke(main, ["queue", "requeue", "--all"])
    assert (result.exit_code, result.output) == (0, "requeued 2 dead letters\n")
    assert runner.invoke(main, ["queue", "dead"]).output == "no dead letters\n"


@pytest.mark.parametrize("args", [[], ["1-0", "--all"]])
def test_requeue_wants_ids_or_all(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(main, ["queue", "requeue", *args])
    assert result.exit_code == 2
    assert "give dead-letter ids" in result.output


def test_without_a_queue_url_the_commands_say_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(QUEUE_URL, raising=False)
    result = CliRunner().invoke(main, ["queue", "stats"])
    assert result.exit_code == 2
    assert f"set {QUEUE_URL}=redis://" in result.output


@pytest.mark.parametrize("scheme", ["redis", "postgres"])
def test_an_unreachable_server_is_one_line_and_exit_code_1(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    if scheme == "redis":
        redis_server.stop()
        monkeypatch.setenv(QUEUE_URL, redis_server.url)
    else:
        monkeypatch.setenv(QUEUE_URL, f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    result = CliRunner().invoke(main, ["queue", "stats"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {scheme} ")
    assert len(result.output.splitlines()) == 1


# A "/" in the password ends the URL's host part early: the parser then quotes a piece of
# the password as the port.
SLASHED_PASSWORD_URL = "redis://user:Pa5/Ss7@localhost:1/0"


@pytest.mark.parametrize("command", [["stats"], ["dead"], ["requeue", "--all"]])
def test_an_unparseable_queue_url_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv(QUEUE_URL, SLASHED_PASSWORD_URL)
    result = CliRunner().invoke(main, ["queue", *command])
    assert isinstance(result.exception, SystemExit), result.exception  # handled, not a crash
    assert result.exit_code == 1
    assert result.output.startswith("Error: the Redis URL does not parse")
    assert len(result.output.splitlines()) == 1
    assert "Pa5" not in result.output
    assert "Ss7" not in result.output


def test_an_unparseable_queue_url_prints_no_traceback_in_a_real_process() -> None:
    env = {**os.environ, QUEUE_URL: SLASHED_PASSWORD_URL}
    done = subprocess.run(
        [sys.executable, "-m", "voicehooks", "queue", "stats"],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert output.startswith("Error: the Redis URL does not parse")
    assert "Pa5" not in output
    assert "Ss7" not in output


@pytest.mark.slow
def test_a_worker_process_finishes_its_job_on_sigterm_and_exits_cleanly(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    effects = tmp_path / "effects"
    (effects / "once").mkdir(parents=True)
    env = {
        **os.environ,
        "VOICEHOOKS_SECRET": SECRET,
        QUEUE_URL: redis_server.url,
        "DURABLE_EFFECTS_DIR": str(effects),
        "DURABLE_HANDLER_SECONDS": "1.5",
    }
    body = msgspec.json.encode(end_of_call_report(call_id="call-term"))
    with running_server(APP, tmp_path, env=env) as receiver:
        request = urllib.request.Request(
            receiver.url + "/", body, sign(body, SECRET, event="end-of-call-report")
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
    log = tmp_path / "worker.log"
    with open(log, "wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "voicehooks", "worker", APP, "--grace-seconds", "10"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 20
        while not (effects / "runs.log").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)  # mid-job: the handler still has ~1.5 s to go
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    text = log.read_text()
    assert (effects / "done.log").read_text() == "report call-term\n", text
    assert "waiting up to 10.0 s for 1 background task(s)" in text
    stats = anyio.run(_stats, redis_server.url)
    assert (stats.length, stats.pending, stats.consumers) == (0, 0, [])


async def _stats(url: str) -> QueueStats:
    queue = RedisQueue.from_url(url)
    try:
        return await queue.stats()
    finally:
        await queue.aclose()


@pytest.mark.slow
def test_real_processes_warn_without_a_key_seal_with_one_and_a_worker_runs_both(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    effects = tmp_path / "effects"
    (effects / "once").mkdir(parents=True)
    env = {
        **os.environ,
        "VOICEHOOKS_SECRET": SECRET,
        QUEUE_URL: redis_server.url,
        "DURABLE_EFFECTS_DIR": str(effects),
    }
    env.pop(QUEUE_KEY, None)
    keyed = {**env, QUEUE_KEY: new_key()}

    def deliver(server_env: dict[str, str], call_id: str) -> str:
        body = msgspec.json.encode(end_of_call_report(call_id=call_id, summary=f"card {CARD}"))
        with running_server(APP, tmp_path, env=server_env) as receiver:
            request = urllib.request.Request(
                receiver.url + "/", body, sign(body, SECRET, event="end-of-call-report")
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
        return receiver.log_path.read_text()

    plain_log = deliver(env, "call-before-the-key")
    assert plain_log.count("in clear text") == 1
    assert f"set {QUEUE_KEY} to seal them" in plain_log
    sealed_log = deliver(keyed, "call-sealed")
    assert "in clear text" not in sealed_log
    held = anyio.run(_raw_entries, redis_server.url)
    assert [entry.startswith(b"\xc1\x01") for entry in held] == [False, True]
    assert CARD.encode() in held[0]
    assert CARD.encode() not in held[1]
    assert b"call-sealed" not in held[1]

    log = tmp_path / "worker.log"
    with open(log, "wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "voicehooks", "worker", APP],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=keyed,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 30
        done = effects / "done.log"
        while time.monotonic() < deadline and (
            not done.exists() or done.read_text().count("\n") < 2
        ):
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    text = log.read_text()
    assert sorted(done.read_text().splitlines()) == [
        "report call-before-the-key",
        "report call-sealed",
    ], text
    assert text.count("is not sealed: written before the queue key was set") == 1
    assert "in clear text" not in text
    assert CARD not in text


async def _raw_entries(url: str) -> list[bytes]:
    queue = RedisQueue.from_url(url)
    try:
        entries: Any = await queue.client.xrange(queue.stream)
        return [fields[b"job"] for _, fields in entries]
    finally:
        await queue.aclose()
