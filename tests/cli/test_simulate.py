"""``voicehooks simulate``: the same scenario in memory and against a real ``voicehooks run``."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers.paths import ROOT
from tests.helpers.servers import free_port, running_server
from voicehooks.cli import main

SECRET = "whsec_cli_simulate"
SCENARIO = str(ROOT / "examples" / "scenarios" / "quickstart.toml")
QUICKSTART = str(ROOT / "examples" / "quickstart.py")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    # Another test may have imported the quickstart with its own secret: import it afresh.
    monkeypatch.delitem(sys.modules, "quickstart", raising=False)
    return CliRunner()


def steps(output: str) -> list[str]:
    """The report without its first line (the call id is fresh per run)."""
    return output.splitlines()[1:]


@pytest.mark.slow
def test_the_example_scenario_gives_the_same_report_in_memory_and_over_http(
    runner: CliRunner, tmp_path: Path
) -> None:
    in_memory = runner.invoke(main, ["simulate", SCENARIO, QUICKSTART, "--no-timing"])
    assert in_memory.exit_code == 0, in_memory.output
    assert in_memory.output.splitlines()[-1] == "8 passed, 0 failed"
    with running_server(QUICKSTART, tmp_path, env={"VOICEHOOKS_SECRET": SECRET}) as server:
        over_http = runner.invoke(
            main, ["simulate", SCENARIO, "--url", server.url + "/", "--no-timing"]
        )
    assert over_http.exit_code == 0, over_http.output
    assert steps(over_http.output) == steps(in_memory.output)
    assert "tool-calls" in server.log()  # the server really answered them


def test_a_failed_expectation_exits_1_with_the_report(runner: CliRunner, tmp_path: Path) -> None:
    scenario = tmp_path / "wrong.toml"
    scenario.write_text(
        '[[step]]\nevent = "tool-calls"\ntool = "check_repair_status"\n'
        'arguments.order_number = "WO-2317"\nexpect.result.status = "ready for pickup"\n'
    )
    result = runner.invoke(main, ["simulate", str(scenario), QUICKSTART])
    assert result.exit_code == 1
    assert "FAIL" in result.output
    assert "result.status: expected 'ready for pickup', got 'waiting for parts'" in result.output
    assert " ms" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([SCENARIO], "give either TARGET"),
        ([SCENARIO, QUICKSTART, "--url", "http://127.0.0.1:1/"], "give either TARGET"),
        ([str(ROOT / "README.md"), QUICKSTART], "not valid TOML"),
        ([SCENARIO, "--url", "ftp://x/"], "is not an http(s) URL"),
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, ["simulate", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_a_server_that_is_not_running_exits_1(runner: CliRunner) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    result = runner.invoke(main, ["simulate", SCENARIO, "--url", url])
    assert result.exit_code == 1
    assert "cannot reach" in result.output


def test_a_server_that_drops_the_connection_twice_is_reported(runner: CliRunner) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def drop_two() -> None:
            for _ in range(2):
                connection, _ = listener.accept()
                connection.recv(65536)
                connection.close()  # no answer at all

        thread = threading.Thread(target=drop_two, daemon=True)
        thread.start()
        result = runner.invoke(main, ["simulate", SCENARIO, "--url", f"http://127.0.0.1:{port}/"])
        thread.join(5)
    assert result.exit_code == 1
    assert "closed the connection twice" in result.output
