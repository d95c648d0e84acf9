"""``voicehooks queue``: stats, dead letters and requeue against a real redis-server and a
real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import anyio
import msgspec
import pytest
from click.testing import CliRunner

from tests.helpers.paths import FIXTURES, ROOT
from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import free_port, running_server
from voicehooks import sign
from voicehooks.cli import main
from voicehooks.core.environment import QUEUE_URL
from voicehooks.core.events import decode_delivery
from voicehooks.core.logs import masked
from voicehooks.testing import end_of_call_report
from voicehooks.work.durable import queue_from_url
from voicehooks.work.jobs import Job, encode_job
from voicehooks.work.queue import QueueStats, RedisQueue

REPORT = (FIXTURES / "end-of-call-report.json").read_bytes()
APP = "tests/apps/durable.py"
SECRET = "whsec_durable_cli_tests"


@pytest.fixture
def runner(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv(QUEUE_URL, backend_url)
    return CliRunner()


def prepare(url: str, *, dead: int, waiting: int, report: bytes = REPORT) -> list[str]:
    """``dead`` dead letters of ``report`` (the fixture's) and ``waiting`` entries, one held
    by w1."""

    async def main() -> list[str]:
        queue = queue_from_url(url)
        await queue.open()
        entry = encode_job(Job(decode_delivery(report), "handler:app:on_report"), 0.0)
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
    assert lines[0] == "voicehooks:jobs: 3 entries (2 unread, 1 in progress), 3 dead letters"
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


def test_dead_letters_are_listed_without_their_bodies(runner: CliRunner, backend_url: str) -> None:
    ids = prepare(backend_url, dead=1, waiting=0)
    body = json.loads(REPORT)
    result = runner.invoke(main, ["queue", "dead"])
    assert result.exit_code == 0, result.output
    first, unreadable = result.output.splitlines()
    assert first.startswith(ids[0])
    assert "attempts=1  reason=KeyError  handler:app:on_report  end-of-call-report" in first
    assert f"call={body['message']['call']['id']}" in first
    assert unreadable.endswith("reason=KeyError  ?  ?  call=?")
    assert body["message"]["summary"][:20] not in result.output
    assert body["message"]["customer"]["number"] not in result.output


def test_dead_letters_show_call_ids_masked_like_every_other_output(
    runner: CliRunner, backend_url: str
) -> None:
    call_id = "call-_+31612345678_XqaQ"  # the platform's REST ids embed the caller's number
    report = msgspec.json.encode(end_of_call_report(call_id=call_id))
    prepare(backend_url, dead=1, waiting=0, report=report)
    result = runner.invoke(main, ["queue", "dead"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith(f"call={masked(call_id)}")
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
