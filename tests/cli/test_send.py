"""``voicehooks send`` against real servers: a ``voicehooks run`` and a few stdlib stand-ins."""

from __future__ import annotations

import http.server
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.helpers.paths import ROOT
from tests.helpers.servers import Server, free_port, running_server
from voicehooks.cli import main

SECRET = "whsec_cli_send_test"

Send = Callable[..., Result]

TARGET = '''
import anyio
from voicehooks import AssistantResponse, CallContext, ToolError, VoiceHooks

app = VoiceHooks()


@app.tool
async def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@app.tool
async def refuse() -> None:
    """Always refuses."""
    raise ToolError("That cannot be done.")


@app.tool
async def whoami(context: CallContext) -> dict[str, str | None]:
    """Echo the call id and the caller."""
    return {"call_id": context.call_id, "caller": context.customer_number}


@app.on("assistant-request")
async def route(context: CallContext) -> AssistantResponse:
    if context.customer_number == "+31600000000":
        return AssistantResponse.reject("We do not take calls from this number.")
    return AssistantResponse.override("asst-1", first_message="Hello!")


@app.on("status-update")
async def slow_handler() -> None:
    await anyio.sleep(2)  # after the answer: send must not wait for it
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("send")
    (directory / "send_target.py").write_text(TARGET)
    target = str(directory / "send_target.py")
    with running_server(target, directory, env={"VOICEHOOKS_SECRET": SECRET}) as running:
        yield running


@pytest.fixture
def send(monkeypatch: pytest.MonkeyPatch) -> Send:
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    monkeypatch.delenv("VOICEHOOKS_SECRET_FILE", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["send", *args])

    return invoke


def url(server: Server) -> str:
    return f"{server.url}/"


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


# -- against voicehooks run --------------------------------------------------------------


def test_a_tool_result_is_printed_per_call(server: Server, send: Send) -> None:
    result = send(
        "tool-calls",
        "--url",
        url(server),
        "--tool",
        "add",
        "--args",
        '{"a": 2, "b": 3}',
        "--tool",
        "refuse",
        "--args",
        "{}",
        "--tool",
        "add",
        "--args",
        '{"a": 1}',
        "--tool",
        "missing",
        "--args",
        "{}",
    )
    assert result.exit_code == 0, result.output
    status, *calls = lines(result)
    assert status.startswith("200 OK in ")
    assert status.endswith(" ms")
    assert [line.split(" ", 1)[0] for line in calls] == ["add", "refuse", "add", "missing"]
    assert calls[0].endswith(": 5")
    assert calls[1].endswith(": error: That cannot be done.")
    assert "error: The arguments for add were not usable: the argument 'b' is missing" in calls[2]
    assert "error: There is no tool called missing on this server" in calls[3]


def test_tools_without_args_get_an_empty_object(server: Server, send: Send) -> None:
    result = send("tool-calls", "--url", url(server), "--tool", "refuse", "--tool", "refuse")
    assert result.exit_code == 0, result.output
    calls = lines(result)[1:]
    assert len(calls) == 2
    assert all(line.endswith(": error: That cannot be done.") for line in calls)
    assert calls[0] != calls[1]  # each call has its own tool call id


def test_caller_and_call_id_reach_the_app(server: Server, send: Send) -> None:
    result = send(
        "tool-calls",
        "--url",
        url(server),
        "--tool",
        "whoami",
        "--caller",
        "+31611111111",
        "--call-id",
        "call-from-cli",
    )
    assert result.exit_code == 0, result.output
    assert lines(result)[1].endswith(': {"call_id": "call-from-cli", "caller": "+31611111111"}')


@pytest.mark.parametrize(
    ("caller", "answer", "meaning"),
    [
        (
            "+31600000000",
            '{"error": "We do not take calls from this number."}',
            "the call is rejected; the caller hears: We do not take calls from this number.",
        ),
        (
            "+31611111111",
            '{"assistant_id": "asst-1", "assistant_override": {"first_message": "Hello!"}}',
            "uses saved assistant asst-1, overriding: first_message",
        ),
    ],
)
def test_an_assistant_request_answer_is_explained(
    server: Server, send: Send, caller: str, answer: str, meaning: str
) -> None:
    result = send("assistant-request", "--url", url(server), "--caller", caller)
    assert result.exit_code == 0, result.output
    assert lines(result)[1:] == [f"answer: {answer}", meaning]


@pytest.mark.parametrize(
    ("event", "options"),
    [
        ("status-update", ["--status", "ended"]),
        ("status-update", []),
        ("end-of-call-report", ["--call-id", "call-report-1"]),
    ],
)
def test_informational_events_are_acknowledged_at_once(
    server: Server, send: Send, event: str, options: list[str]
) -> None:
    started = time.monotonic()
    result = send(event, "--url", url(server), *options)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 1.5  # the status handler sleeps 2 s after the 200
    assert lines(result)[1:] == [
        "answer: {}",
        "acknowledged: the platform ignores this body; handlers run after it",
    ]


def test_a_wrong_secret_is_a_401_explained_in_words(server: Server, send: Send) -> None:
    result = CliRunner(env={"VOICEHOOKS_SECRET": "whsec_not_the_servers"}).invoke(
        main, ["send", "status-update", "--url", url(server)]
    )
    assert result.exit_code == 1
    assert lines(result)[0].startswith("401 Unauthorized in ")
    assert "the server says: signature does not match any configured secret" in result.stdout
    assert "the secret used here probably differs from the server's" in result.stderr
    assert "whsec_not_the_servers" not in result.output


def test_a_stale_timestamp_blames_the_clocks(server: Server, send: Send) -> None:
    stale = str(int(time.time()) - 3600)
    result = send("status-update", "--url", url(server), "--timestamp", stale)
    assert result.exit_code == 1
    assert re.search(r"X-Webhook-Timestamp is 360[01](\.\d)? s old", result.stdout)
    assert "The clocks differ" in result.stderr


def test_unsigned_to_a_verifying_server_says_to_sign(server: Server, send: Send) -> None:
    result = send("status-update", "--url", url(server), "--unsigned")
    assert result.exit_code == 1
    assert "missing X-Webhook-Signature header" in result.stdout
    assert "drop --unsigned" in result.stderr


def test_a_wrong_path_is_a_404_with_a_hint(server: Server, send: Send) -> None:
    result = send("status-update", "--url", f"{server.url}/hooks")
    assert result.exit_code == 1
    assert lines(result)[0].startswith("404 Not Found")
    assert "put the app's path (or mount path) in --url" in result.stderr


def test_data_sends_a_file_as_it_is(server: Server, send: Send, tmp_path: Path) -> None:
    fixture = ROOT / "tests" / "fixtures" / "tool-calls-multi.json"
    result = send("tool-calls", "--url", url(server), "--data", str(fixture))
    assert result.exit_code == 0, result.output
    names = [line.split(" ", 1)[0] for line in lines(result)[1:]]
    assert names == ["book_service_slot", "send_sms_confirmation", "check_repair_status"]
    assert all("error: There is no tool called" in line for line in lines(result)[1:])
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"message": ')
    result = send("tool-calls", "--url", url(server), "--data", str(broken))
    assert result.exit_code == 1
    assert lines(result)[0].startswith("400 Bad Request")
    assert "the body is not valid JSON" in result.stdout
    assert "check the --data file" in result.stderr


def test_the_installed_command_prints_the_tool_result(server: Server) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "voicehooks",
            "send",
            "tool-calls",
            "--url",
            url(server),
            "--tool",
            "add",
            "--args",
            '{"a": 20, "b": 22}',
        ],
        capture_output=True,
        text=True,
        env={"VOICEHOOKS_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    status, result = completed.stdout.splitlines()
    assert status.startswith("200 OK in ")
    assert result.startswith("add [tool_")
    assert result.endswith("]: 42")


def test_the_quickstart_as_a_new_user_runs_it(tmp_path: Path, send: Send) -> None:
    quickstart = str(ROOT / "examples" / "quickstart.py")
    with running_server(quickstart, tmp_path, env={"VOICEHOOKS_SECRET": SECRET}) as running:
        result = send(
            "tool-calls",
            "--url",
            url(running),
            "--tool",
            "check_repair_status",
            "--args",
            '{"order_number": "WO-2291"}',
        )
        report = send("end-of-call-report", "--url", url(running), "--call-id", "call-qs")
        time.sleep(0.2)
        log = running.log()
    assert result.exit_code == 0, result.output
    assert lines(result)[1].endswith(': {"order_number": "WO-2291", "status": "ready for pickup"}')
    assert report.exit_code == 0
    assert "call call-qs ended after 95 s (user_hangup)" in log


# -- no server, or a strange one ---------------------------------------------------------


def test_a_refused_connection_says_the_server_is_not_running(send: Send) -> None:
    address = f"http://127.0.0.1:{free_port()}/"
    result = send("status-update", "--url", address)
    assert result.exit_code == 1
    assert f"the server is probably not running at {address}" in result.stderr


ANSWERS = {
    "/inline": b'{"assistant": {"first_message": "Hi", "llm_config": {}}}',
    "/list": b"[1]",
    "/reference": b'{"assistant_id": "asst-2"}',
}


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers by path: a redirect, a 500, a non-JSON 200, or nothing for a while."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path == "/redirect":
            self.send_response(307)
            self.send_header("location", "http://127.0.0.1/hooks/")
            body = b""
        elif self.path == "/fail":
            self.send_response(500)
            body = b'{"error":"internal error"}'
        elif self.path == "/teapot":
            self.send_response(418)
            body = b""
        elif self.path in ANSWERS:
            self.send_response(200)
            body = ANSWERS[self.path]
        else:
            self.send_response(200)
            body = b"ok"
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hung up on /slow, as intended


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    httpd = _QuietServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("path", "options", "code", "expected"),
    [
        ("/redirect", [], 1, "redirected to http://127.0.0.1/hooks/"),
        ("/fail", [], 1, "The server failed while answering; its log says why."),
        ("/text", [], 0, "answer (not JSON): ok"),
        ("/slow", ["--timeout", "0.2"], 1, "no answer from"),
    ],
)
def test_odd_answers_are_explained(
    stub: str, send: Send, path: str, options: list[str], code: int, expected: str
) -> None:
    result = send("status-update", "--url", stub + path, *options)
    assert result.exit_code == code
    assert expected in result.output


@pytest.mark.parametrize(
    ("path", "meaning"),
    [
        ("/inline", "an inline configuration with: first_message, llm_config"),
        ("/list", "not an object: the platform would use the saved configuration"),
        ("/reference", "uses saved assistant asst-2, overriding: nothing"),
    ],
)
def test_every_assistant_request_mode_is_explained(
    stub: str, send: Send, path: str, meaning: str
) -> None:
    result = send("assistant-request", "--url", stub + path)
    assert result.exit_code == 0
    assert lines(result)[-1] == meaning


def test_an_unexpected_status_with_an_empty_body_is_still_reported(stub: str, send: Send) -> None:
    result = send("end-of-call-report", "--url", stub + "/teapot")
    assert result.exit_code == 1
    assert "the server says: (an empty body)" in result.stdout
    assert "The server answered 418; its log may say why." in result.stderr


def test_data_may_come_from_stdin(server: Server) -> None:
    body = (ROOT / "tests" / "fixtures" / "status-update-ended.json").read_bytes()
    result = CliRunner(env={"VOICEHOOKS_SECRET": SECRET}).invoke(
        main, ["send", "status-update", "--url", url(server), "--data", "-"], input=body
    )
    assert result.exit_code == 0, result.output
    assert "answer: {}" in result.stdout


def test_a_missing_data_file_is_a_usage_error(send: Send, tmp_path: Path) -> None:
    result = send("status-update", "--data", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "cannot read" in result.output


# -- usage errors: exit code 2 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tool-calls"], "tool-calls needs a tool: --tool NAME"),
        (
            ["tool-calls", "--tool", "a", "--tool", "b", "--args", "{}"],
            "give one --args per --tool",
        ),
        (["tool-calls", "--tool", "a", "--args", "{'a': 1}"], "--args for a is not JSON"),
        (["tool-calls", "--tool", "a", "--args", "[1]"], "must be a JSON object"),
        (["status-update", "--tool", "a"], "--tool and --args belong to tool-calls"),
        (["tool-calls", "--tool", "a", "--status", "ended"], "--status belongs to status-update"),
        (["status-update", "--url", "127.0.0.1:8000"], "is not an http(s) URL"),
        (["status-update", "--url", "http://127.0.0.1:99999/"], "has an invalid port"),
        (["hang-up"], "voicehooks send hang-up --data FILE"),
        (["tool-call"], "there is no sample of 'tool-call'; did you mean tool-calls?"),
        (["End-of-call-report"], "did you mean end-of-call-report?"),
    ],
)
def test_usage_errors_exit_2_and_say_what_to_do(send: Send, args: list[str], message: str) -> None:
    result = send(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_data_excludes_the_sample_options(send: Send, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"message": {"type": "status-update"}}')
    result = send("status-update", "--data", str(body), "--caller", "+31")
    assert result.exit_code == 2
    assert "--data sends the file as it is; drop --caller" in result.output
    result = send("tool-calls", "--data", str(body))
    assert result.exit_code == 2
    assert "the file holds a status-update event, not tool-calls" in result.output


def test_an_event_without_a_sample_sends_nothing(server: Server, send: Send) -> None:
    before = server.log()
    result = send("transfer-destination-request", "--url", url(server))
    assert result.exit_code == 2
    assert "there is no sample of 'transfer-destination-request'" in result.output
    time.sleep(0.2)
    assert server.log() == before  # no end-of-call-report sample, or anything, went out


def test_the_advice_for_a_file_of_another_type_is_a_command_that_works(
    server: Server, send: Send, tmp_path: Path
) -> None:
    body = tmp_path / "captured delivery.json"
    body.write_text('{"message": {"type": "transfer-destination-request", "call": {"id": "c-9"}}}')
    result = send("end-of-call-report", "--url", url(server), "--data", str(body))
    assert result.exit_code == 2
    advice = result.output.strip().splitlines()[-1].split(": ", 2)[-1]
    program, command, *args = shlex.split(advice)
    assert (program, command) == ("voicehooks", "send")
    result = send(*args, "--url", url(server))
    assert result.exit_code == 0, result.output
    assert lines(result)[0].startswith("200 OK")
    assert "answer: {}" in result.stdout  # voicehooks acknowledges a type it does not know


def test_no_secret_says_where_to_put_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    monkeypatch.delenv("VOICEHOOKS_SECRET_FILE", raising=False)
    result = CliRunner().invoke(main, ["send", "status-update"])
    assert result.exit_code == 2
    assert "no secret to sign with: set VOICEHOOKS_SECRET" in result.output
    assert "--env-file FILE" in result.output


def test_the_secret_may_come_from_an_env_file_or_a_secret_file(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    env_file = tmp_path / "local.env"
    env_file.write_text(f"VOICEHOOKS_SECRET='{SECRET}'\n")
    result = CliRunner().invoke(
        main, ["send", "status-update", "--url", url(server), "--env-file", str(env_file)]
    )
    assert result.exit_code == 0, result.output
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(f"{SECRET}\n")
    monkeypatch.setenv("VOICEHOOKS_SECRET_FILE", str(secret_file))
    result = CliRunner().invoke(main, ["send", "status-update", "--url", url(server)])
    assert result.exit_code == 0, result.output
