"""``voicehooks deploy`` against FakePlatform: in-process, and over a socket to a real uvicorn."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.helpers.paths import ROOT
from voicehooks.cli import main
from voicehooks.cli.platform import explain
from voicehooks.live.api import (
    PlatformAPIError,
    PlatformUnavailable,
    RateLimited,
    Unauthorized,
)
from voicehooks.testing import FakePlatform

TARGET = str(ROOT / "examples" / "quickstart.py")
PUBLIC = "https://hooks.example.com"
SECRET = "whsec_deploy_test_secret"
KEY = "vh-deploy-test-key"
END_CALL = {"type": "end_call"}
SAVED: dict[str, Any] = {
    "name": "Repairs",
    "first_message": "Hello, repairs desk.",
    "webhook_url": "https://old-tunnel.example.net/",
    "webhook_events": ["tool-calls"],
    "stt_config": {"provider": "deepgram", "model": "nova-3", "language": "en"},
    "llm_config": {
        "provider": "openai",
        "model": "gpt-4.1",
        "messages": [{"role": "system", "content": "You help with repairs."}],
        "tools": [END_CALL, {"type": "mcp", "mcp_server_id": "mcp_1", "allowed_tools": ["kb"]}],
    },
}


@pytest.fixture
def platform() -> FakePlatform:
    platform = FakePlatform(api_key=KEY)
    # The attachment names a server the organization has, as the platform requires.
    server = platform.add_mcp_server(name="Knowledge base", url="https://kb.example.com/mcp")
    assistant = copy.deepcopy(SAVED)
    assistant["llm_config"]["tools"][1]["mcp_server_id"] = server["id"]
    platform.add_assistant("asst_1", assistant)
    return platform


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    monkeypatch.delenv("VOICEHOOKS_SECRET_FILE", raising=False)
    monkeypatch.delenv("VOICEHOOKS_API_KEY_FILE", raising=False)
    return CliRunner()


def deploy(runner: CliRunner, platform: FakePlatform, *options: str) -> Result:
    arguments = ["deploy", TARGET, "--assistant", "asst_1", "--url", PUBLIC, *options]
    return runner.invoke(main, arguments, obj=platform.client())


def test_a_dry_run_shows_the_changes_and_sends_nothing(
    runner: CliRunner, platform: FakePlatform
) -> None:
    result = deploy(runner, platform, "--dry-run")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        f"webhook_url: the assistant sends events to https://old-tunnel.example.net/, the app "
        f"is at {PUBLIC}/",
        "webhook_events: the app also handles end-of-call-report",
        "check_repair_status: missing in the assistant: add the app's definition",
    ]
    assert "CHANGES: 3 difference(s)" in result.stderr
    assert [r.method for r in platform.requests] == ["GET"]


def test_yes_writes_once_and_a_dry_run_then_finds_nothing(
    runner: CliRunner, platform: FakePlatform
) -> None:
    result = deploy(runner, platform, "--yes", "--set-secret")
    assert result.exit_code == 0, result.output
    assert "webhook_secret: [set]" in result.stdout
    assert SECRET not in result.output
    assert "DEPLOYED: assistant asst_1 now calls https://hooks.example.com/" in result.stderr
    patch = [r for r in platform.requests if r.method == "PATCH"]
    assert len(patch) == 1
    assert set(patch[0].body) == {"webhook_url", "webhook_events", "llm_config", "webhook_secret"}
    saved = platform.assistants["asst_1"]
    assert saved["webhook_secret"] == SECRET
    assert saved["first_message"] == SAVED["first_message"]
    assert saved["stt_config"] == SAVED["stt_config"]
    tools = saved["llm_config"]["tools"]
    assert tools[0] == END_CALL
    assert tools[1]["type"] == "mcp"
    assert tools[2]["name"] == "check_repair_status"
    assert tools[2]["url"] == f"{PUBLIC}/"
    assert saved["llm_config"]["messages"] == SAVED["llm_config"]["messages"]
    for options in (["--dry-run"], ["--dry-run", "--set-secret"], ["--yes"]):
        again = deploy(runner, platform, *options)
        assert again.exit_code == 0, again.output
        assert again.stdout == ""
        assert "SAME: assistant asst_1 is in step" in again.stderr
    assert len([r for r in platform.requests if r.method == "PATCH"]) == 1


def test_without_a_terminal_or_yes_it_refuses_before_asking_the_platform(
    runner: CliRunner, platform: FakePlatform
) -> None:
    result = deploy(runner, platform)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: no terminal to confirm on: pass --yes to write, or --dry-run to only check"
    ]
    assert platform.requests == []
    both = deploy(runner, platform, "--dry-run", "--yes")
    assert both.exit_code == 2


@pytest.mark.parametrize(("answer", "code", "patches"), [("n\n", 1, 0), ("y\n", 0, 1)])
def test_at_a_terminal_it_asks_first(
    runner: CliRunner,
    platform: FakePlatform,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    patches: int,
) -> None:
    # The package's name `deploy` is the command; the module is in sys.modules.
    monkeypatch.setattr(sys.modules["voicehooks.cli.deploy"], "_can_ask", lambda: True)
    arguments = ["deploy", TARGET, "--assistant", "asst_1", "--url", PUBLIC]
    result = runner.invoke(main, arguments, obj=platform.client(), input=answer)
    assert result.exit_code == code, result.output
    assert "Write them to assistant asst_1? [y/N]" in result.stderr
    assert len([r for r in platform.requests if r.method == "PATCH"]) == patches


@pytest.mark.parametrize(
    ("status", "retry_after", "message"),
    [
        (404, None, "cannot update assistant 'asst_1': not found (404): check the id"),
        (409, None, "cannot update assistant 'asst_1': conflict (409): Injected failure"),
        (422, None, "the platform refused it (422): Injected failure"),
        (
            429,
            45.0,
            "rate limited (429): the key's requests per minute are used up; try again in 45 s",
        ),
        (500, None, "the platform failed (500); try again later"),
    ],
)
def test_every_refusal_of_the_write_is_one_line(
    runner: CliRunner,
    platform: FakePlatform,
    status: int,
    retry_after: float | None,
    message: str,
) -> None:
    # The GET succeeds; the PATCH (and, for a 5xx or a 429, its retries) fail.
    platform.fail_next(3, status, retry_after, method="PATCH")
    result = deploy(runner, platform, "--yes", "--set-secret")
    assert result.exit_code == 2, result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert message in error[0]
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    assert KEY not in result.output


def test_a_bad_key_an_unknown_assistant_and_no_key(
    runner: CliRunner, platform: FakePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = FakePlatform(api_key="other-key").client()
    wrong.base_url = platform.base_url
    wrong._transport = platform.transport()
    refused = runner.invoke(
        main, ["deploy", TARGET, "--assistant", "asst_1", "--url", PUBLIC, "--dry-run"], obj=wrong
    )
    assert refused.exit_code == 2
    assert "the platform refused the API key (401): check VOICEHOOKS_API_KEY" in refused.stderr
    assert "other-key" not in refused.output
    unknown = runner.invoke(
        main,
        ["deploy", TARGET, "--assistant", "asst_nobody", "--url", PUBLIC, "--dry-run"],
        obj=platform.client(),
    )
    assert unknown.exit_code == 2
    assert "cannot read assistant 'asst_nobody': not found (404)" in unknown.stderr
    monkeypatch.delenv("VOICEHOOKS_API_KEY", raising=False)
    no_key = runner.invoke(
        main, ["deploy", TARGET, "--assistant", "asst_1", "--url", PUBLIC, "--dry-run"]
    )
    assert no_key.exit_code == 2
    assert "No platform API key. Set VOICEHOOKS_API_KEY" in no_key.stderr


def test_usage_errors(runner: CliRunner, platform: FakePlatform) -> None:
    bad_url = deploy_args(runner, platform, "--url", "hooks.example.com", "--dry-run")
    assert bad_url.exit_code == 2
    assert "is not an http(s) URL" in bad_url.output
    unsigned = str(ROOT / "tests" / "apps" / "unsigned_tools.py")
    no_secret = runner.invoke(
        main,
        ["deploy", unsigned, "--assistant", "asst_1", "--url", PUBLIC, "--set-secret", "--yes"],
        obj=platform.client(),
    )
    assert no_secret.exit_code == 2
    assert "has no secret to set" in no_secret.output


def deploy_args(runner: CliRunner, platform: FakePlatform, *arguments: str) -> Result:
    return runner.invoke(
        main, ["deploy", TARGET, "--assistant", "asst_1", *arguments], obj=platform.client()
    )


@pytest.mark.slow
def test_over_a_socket_the_platform_unreachable_and_then_a_deploy(
    runner: CliRunner, platform: FakePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.servers import free_port

    arguments = ["deploy", TARGET, "--assistant", "asst_1", "--url", PUBLIC]
    monkeypatch.setenv("VOICEHOOKS_API_KEY", KEY)
    monkeypatch.setenv("VOICEHOOKS_API_URL", f"http://127.0.0.1:{free_port()}/api/v1")
    down = runner.invoke(main, [*arguments, "--dry-run"])
    assert down.exit_code == 2
    assert "cannot read assistant 'asst_1': cannot reach the platform at http://127.0.0.1:" in (
        down.stderr
    )
    assert "check the network and VOICEHOOKS_API_URL" in down.stderr
    with platform.serve() as base_url:
        monkeypatch.setenv("VOICEHOOKS_API_URL", base_url)
        written = runner.invoke(main, [*arguments, "--yes"])
        assert written.exit_code == 0, written.output
        checked = runner.invoke(main, [*arguments, "--dry-run"])
        assert checked.exit_code == 0, checked.output
    assert json.dumps(platform.assistants["asst_1"]["webhook_events"]) == (
        '["tool-calls", "end-of-call-report"]'
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (Unauthorized("x", status=403), "the API key may not do this (403)"),
        (RateLimited("x", status=429), "try again in a minute"),
        (PlatformUnavailable("get assistant a: ConnectTimeout"), "(ConnectTimeout): check the"),
        (PlatformUnavailable("x", status=502), "the platform failed (502); try again later"),
        (PlatformAPIError("x", status=402, detail="insufficient credits"), "answered 402: insuff"),
        (PlatformAPIError("x", status=422, detail="bad whsec_s3cret\nvalue"), "(422): bad [set] v"),
    ],
)
def test_explain_says_each_failure_in_one_line_without_secrets(
    error: PlatformAPIError, reason: str
) -> None:
    line = explain(error, "read assistant 'a'", "https://api.example.com", ["whsec_s3cret", None])
    assert line.startswith("cannot read assistant 'a': ")
    assert reason in line
    assert "\n" not in line
    assert "s3cret" not in line


def test_a_platform_that_kept_something_else_is_worth_a_warning(
    runner: CliRunner, platform: FakePlatform
) -> None:
    client = platform.client()

    async def forgetful(assistant_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {"id": assistant_id}

    client.update_assistant = forgetful  # type: ignore[method-assign,assignment]
    arguments = ["deploy", TARGET, "--assistant", "asst_1", "--url", PUBLIC, "--yes"]
    result = runner.invoke(main, arguments, obj=client)
    assert result.exit_code == 0, result.output
    assert "warning: the platform's answer still differs in 3 place(s)" in result.stderr


MCP_TOKEN = "mcp-deploy-test-token"


@pytest.mark.slow
def test_mcp_mode_makes_attaches_and_tests_the_server(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.helpers.servers import running_server

    monkeypatch.setenv("VOICEHOOKS_MCP_TOKEN", MCP_TOKEN)
    platform = FakePlatform(api_key=KEY, local_mcp_servers=True)
    saved = copy.deepcopy(SAVED)
    saved["llm_config"]["tools"] = [
        END_CALL,
        {
            "name": "check_repair_status",
            "description": "old",
            "url": "https://old-tunnel.example.net/",
        },
    ]
    platform.add_assistant("asst_1", saved)
    env = {"VOICEHOOKS_SECRET": SECRET, "VOICEHOOKS_MCP_TOKEN": MCP_TOKEN}
    with running_server(TARGET, tmp_path, env=env) as app:
        arguments = ["deploy", TARGET, "--assistant", "asst_1", "--url", app.url, "--mcp"]
        dry = runner.invoke(main, [*arguments, "--dry-run"], obj=platform.client())
        assert dry.exit_code == 1, dry.output
        assert "mcp_server: no server named 'voicehooks 127.0.0.1:" in dry.stdout
        assert "mcp: the server is not attached: to attach, allowing ['check_repair_status']" in (
            dry.stdout
        )
        assert [r.method for r in platform.requests] == ["GET", "GET"]  # servers, assistant

        written = runner.invoke(main, [*arguments, "--yes"], obj=platform.client())
        assert written.exit_code == 0, written.output
        assert "MCP test: the platform sees 1 tool(s): check_repair_status" in written.stdout
        assert MCP_TOKEN not in written.output
        ((server_id, server),) = platform.mcp_servers.items()
        assert server["url"] == f"{app.url}/mcp"
        assert server["timeout_seconds"] == 20  # the app's 18 s deadline and 2 s to answer
        assert platform.mcp_headers(server_id) == {"Authorization": f"Bearer {MCP_TOKEN}"}
        assistant = platform.assistants["asst_1"]
        # The tool goes over MCP now: its webhook entry leaves, the built-in stays in place.
        assert assistant["llm_config"]["tools"] == [
            END_CALL,
            {"type": "mcp", "mcp_server_id": server_id, "allowed_tools": ["check_repair_status"]},
        ]
        assert "tool-calls" not in assistant["webhook_events"]

        again = runner.invoke(main, [*arguments, "--dry-run"], obj=platform.client())
        assert again.exit_code == 0, again.output
        assert "SAME: assistant asst_1 is in step" in again.stderr


def test_mcp_mode_needs_a_token(
    runner: CliRunner, platform: FakePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOICEHOOKS_MCP_TOKEN", raising=False)
    monkeypatch.delenv("VOICEHOOKS_MCP_TOKEN_FILE", raising=False)
    result = deploy(runner, platform, "--mcp", "--dry-run")
    assert result.exit_code == 2
    assert "--mcp: the app serves no MCP endpoint; set VOICEHOOKS_MCP_TOKEN" in result.output
    assert platform.requests == []
