"""``voicehooks dev`` end to end, as the issue's "done means" reads, on real uvicorn processes.

Start ``voicehooks dev examples/quickstart.py --record FILE`` (with reload, as a new user
would), send it a few events with ``voicehooks send``, read the inspector's list without
JavaScript, replay one delivery, run the example scenario in memory and against the server
(the same report), and replay the recording as a regression check.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers.paths import ROOT
from tests.helpers.servers import Server, running_server
from voicehooks.cli import main

SECRET = "whsec_cli_dev"
QUICKSTART = "examples/quickstart.py"
SCENARIO = "examples/scenarios/quickstart.toml"


def voicehooks(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOICEHOOKS_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "voicehooks", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def fetch(server: Server, path: str, data: bytes | None = None) -> tuple[int, str, str]:
    """GET (or POST a form); return the status, the final URL and the page."""
    request = urllib.request.Request(server.url + path, data=data)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.url, response.read().decode()


@pytest.mark.slow
def test_a_new_user_sees_sends_replays_and_simulates(tmp_path: Path) -> None:
    record = tmp_path / "deliveries.jsonl"
    env = {"VOICEHOOKS_SECRET": SECRET}
    args = ["--record", str(record)]
    with running_server(QUICKSTART, tmp_path, env=env, command="dev", args=args) as server:
        url = server.url + "/"
        call = ["--url", url, "--call-id", "call-dev-1"]
        lookup = ["--tool", "check_repair_status", "--args", '{"order_number": "WO-2291"}']
        sends = [
            ["send", "assistant-request", *call],
            ["send", "tool-calls", *call, *lookup],
            ["send", "status-update", *call, "--status", "ended"],
        ]
        for command in sends:
            sent = voicehooks(*command)
            assert sent.returncode == 0, sent.stderr

        status, _, page = fetch(server, "/_voicehooks/")
        assert status == 200
        assert "call-dev-1" in page
        ids = re.findall(r'data-id="(\d+)"', page)
        assert len(ids) == 3
        tool_delivery = ids[1]  # newest first: status-update, tool-calls, assistant-request

        status, final, detail = fetch(
            server, f"/_voicehooks/deliveries/{tool_delivery}/replay", b"bypass_dedupe=1"
        )
        assert status == 200  # after the 303 to the replay's own page
        assert final.endswith(f"/_voicehooks/deliveries/{len(ids) + 1}")
        assert f'yes, of <a href="/_voicehooks/deliveries/{tool_delivery}">' in detail
        assert "ready for pickup" in detail

        in_memory = voicehooks("simulate", SCENARIO, QUICKSTART, "--no-timing")
        over_http = voicehooks("simulate", SCENARIO, "--url", url, "--no-timing")
        assert in_memory.returncode == 0, in_memory.stdout + in_memory.stderr
        assert over_http.returncode == 0, over_http.stdout
        assert over_http.stdout.splitlines()[1:] == in_memory.stdout.splitlines()[1:]

        replayed = voicehooks("replay", str(record), "--url", url, "--resign")
        log = server.log()
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert replayed.stdout.splitlines()[-1] == "12 replayed: 12 same, 0 different"
    assert f"replaying delivery #{tool_delivery} (bypassing duplicates)" in log
    assert "tools=check_repair_status:ok replay (duplicates bypassed)" in log
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["event"] for line in lines[:3]] == [
        "assistant-request",
        "tool-calls",
        "status-update",
    ]
    assert lines[3]["is_replay"] is True
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    assert "+31655018342" not in log  # the development log shows no phone numbers either


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_the_inspector_is_refused_on_a_non_loopback_host(host: str) -> None:
    result = CliRunner(env={"VOICEHOOKS_SECRET": SECRET}).invoke(
        main, ["dev", QUICKSTART, "--host", host]
    )
    assert result.exit_code == 2
    assert "--allow-remote-inspector" in result.output


def test_a_record_file_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner(env={"VOICEHOOKS_SECRET": SECRET}).invoke(
        main, ["run", QUICKSTART, "--record", str(tmp_path / "missing" / "r.jsonl")]
    )
    assert result.exit_code == 2
    assert "cannot write" in result.output


def test_each_server_process_adds_the_recorder_and_the_inspector(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from voicehooks.cli import serving
    from voicehooks.core import environment
    from voicehooks.dev.inspector import Inspector
    from voicehooks.observe.recording import Recorder

    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    monkeypatch.setenv(environment.RUN_TARGET, str(ROOT / QUICKSTART))
    monkeypatch.setenv(environment.RUN_RECORD, str(tmp_path / "r.jsonl"))
    monkeypatch.setenv(environment.RUN_INSPECTOR, "remote")
    monkeypatch.delitem(sys.modules, "quickstart", raising=False)

    async def load() -> object:
        return serving.app()  # uvicorn calls the factory on its event loop

    try:
        served = asyncio.run(load())
    finally:
        gc.unfreeze()  # what a server process does once is not for the test process
    assert isinstance(served, Inspector)
    assert served.allow_remote
    assert served.secret == SECRET
    assert served.app.development
    (recorder,) = [o for o in served.app.observers.observers if isinstance(o, Recorder)]
    recorder.close()
    served.recent.stop_capturing_logs()
    assert recorder.path == tmp_path / "r.jsonl"


@pytest.mark.slow
def test_fix_the_code_and_replay_the_delivery_after_the_reload(tmp_path: Path) -> None:
    source = (ROOT / QUICKSTART).read_text()
    app_file = tmp_path / "app.py"
    app_file.write_text(source)
    env = {"VOICEHOOKS_SECRET": SECRET}
    logs = tmp_path / "logs"  # outside the watched directory
    logs.mkdir()
    histories = set(Path(tempfile.gettempdir()).glob("voicehooks-dev-*"))
    with running_server("app.py", logs, env=env, command="dev", cwd=tmp_path) as server:
        sent = voicehooks(
            "send",
            "tool-calls",
            "--url",
            server.url + "/",
            "--tool",
            "check_repair_status",
            "--args",
            '{"order_number": "WO-2317"}',
        )
        assert "waiting for parts" in sent.stdout, sent.stdout + sent.stderr
        app_file.write_text(source.replace("waiting for parts", "parts arrived, ready Friday"))
        deadline = time.monotonic() + 20
        while server.log().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        _, _, page = fetch(server, "/_voicehooks/")
        assert 'data-id="1"' in page  # the list survived the reload
        _, final, detail = fetch(server, "/_voicehooks/deliveries/1/replay", b"bypass_dedupe=1")
    assert final.endswith("/_voicehooks/deliveries/2")
    assert "parts arrived, ready Friday" in detail  # the fixed code answered the replay
    # The list's file (personal data) went with the server.
    assert set(Path(tempfile.gettempdir()).glob("voicehooks-dev-*")) <= histories


def _histories(directory: Path) -> list[Path]:
    return sorted(directory.glob("voicehooks-dev-*"))


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_the_inspector_history_does_not_outlive_dev(tmp_path: Path, stop: str) -> None:
    """SIGTERM runs the cleanup; after kill -9, the next ``voicehooks dev`` removes the
    history of the process that is gone (it holds what callers said)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"VOICEHOOKS_SECRET": SECRET, "TMPDIR": str(temp)}
    args = ["--no-reload"]  # one process to kill: the one holding the history
    with running_server(QUICKSTART, tmp_path, env=env, command="dev", args=args) as server:
        (history,) = _histories(temp)
        (history / "inspector.jsonl").write_text('{"summary": "card 4111 1111 1111 1111"}\n')
        if stop == "SIGKILL":
            server.process.send_signal(signal.SIGKILL)
        else:
            server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        time.sleep(0.5)
        if stop == "SIGTERM":
            assert _histories(temp) == []
            return
        assert _histories(temp) == [history]  # nothing ran: the next start cleans up
    with running_server(QUICKSTART, tmp_path, env=env, command="dev", args=args):
        assert history not in _histories(temp)
        assert len(_histories(temp)) == 1  # its own


FAILING_APP = """
from voicehooks import VoiceHooks

app = VoiceHooks()


@app.tool
def look_up(order_number: str) -> str:
    '''Look an order up.'''
    raise RuntimeError(f"no order {order_number} for +31612345678")
"""


@pytest.mark.parametrize(
    ("inspector", "revealed"),
    [("local", True), ("remote", False), (None, False)],
    ids=["dev-on-loopback", "dev-remote", "run"],
)
def test_only_dev_on_loopback_shows_an_exception_s_message(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    inspector: str | None,
    revealed: bool,
) -> None:
    from voicehooks.cli import serving
    from voicehooks.core import environment, logs
    from voicehooks.testing import WebhookClient

    monkeypatch.setattr(logs, "_revealed", False)  # and back after the test
    (tmp_path / "failing_app.py").write_text(FAILING_APP)
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    monkeypatch.setenv(environment.RUN_TARGET, str(tmp_path / "failing_app.py"))
    monkeypatch.delenv(environment.RUN_RECORD, raising=False)
    if inspector is None:
        monkeypatch.delenv(environment.RUN_INSPECTOR, raising=False)
    else:
        monkeypatch.setenv(environment.RUN_INSPECTOR, inspector)
    monkeypatch.delitem(sys.modules, "failing_app", raising=False)

    async def serve_one_call() -> None:
        served: Any = serving.app()
        app = served.app if inspector else served
        try:
            await WebhookClient(app, raise_exceptions=False).call_tool("look_up", order_number="7")
        finally:
            if inspector:
                served.recent.stop_capturing_logs()

    try:
        with caplog.at_level(logging.ERROR, logger="voicehooks"):
            asyncio.run(serve_one_call())
    finally:
        gc.unfreeze()
    (line,) = [r.getMessage() for r in caplog.records if "look_up" in r.getMessage()]
    assert ("no order 7 for +31612345678" in line) is revealed, line
    assert ("RuntimeError (message withheld)" in line) is not revealed, line
    assert "Traceback (most recent call last)" in line
