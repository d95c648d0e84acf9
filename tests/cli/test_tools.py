"""``voicehooks tools --check`` and ``--diff``: the lines they print and their exit codes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers.paths import ROOT
from voicehooks.cli import main

# Every example's app: a new example is checked without being listed here.
EXAMPLES = [
    f"examples/{path.name}" + (":hooks" if path.name == "fastapi_mount.py" else "")
    for path in sorted((ROOT / "examples").glob("*.py"))
]
BAD_APP = str(ROOT / "tests" / "apps" / "bad_tools.py")
RENAMED = str(ROOT / "tests" / "fixtures" / "assistant-renamed-parameter.json")
URL = "https://hooks.example.com/voice"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    monkeypatch.delenv("VOICEHOOKS_SECRET_FILE", raising=False)
    return CliRunner()


@pytest.mark.parametrize("example", EXAMPLES)
def test_check_passes_on_the_examples(runner: CliRunner, example: str) -> None:
    result = runner.invoke(main, ["tools", str(ROOT / example), "--check"])
    assert len(EXAMPLES) >= 5
    assert result.exit_code == 0, result.output
    assert "OK: " in result.stderr
    assert "error:" not in result.stdout


def test_check_fails_on_the_bad_app_with_one_line_per_problem(runner: CliRunner) -> None:
    result = runner.invoke(main, ["tools", BAD_APP, "--check"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "error: undocumented: description: missing or blank: the model decides when to call a "
        "tool from its description; give the function a docstring",
        "error: wordy: description: 2,177 characters; OpenAI refuses more than 1,024: keep when "
        "to call it there and move the rest to the assistant's prompt",
        'error: untyped: parameters.properties.order_number: no "type": the model may send '
        "anything; annotate the parameter (str, int, float, bool, a Literal, ...)",
        "warning: one_choice: parameters.properties.channel: an enum with one value ('sms') is a "
        "constant: remove the parameter and use the value in the function, or list every "
        "allowed value",
        "hint: one_choice: once_per_call: it says 'send': a model that did not hear back in "
        "time calls it again with a new id; @app.tool(once_per_call=True) runs it once per "
        "intent (see 'Retries from the model')",
    ]
    assert "FAIL: 4 tool(s), 3 error(s), 1 warning(s)" in result.stderr


NESTED_APP = (
    "import msgspec\n"
    "from voicehooks import VoiceHooks\n"
    "app = VoiceHooks(secret='whsec_x')\n"
    "class Bike(msgspec.Struct):\n"
    "    brand: str\n"
    "@app.tool\n"
    "def book(bike: Bike) -> str:\n"
    '    """Book a repair.\n\n    Args:\n        bike: The caller\'s bike.\n    """\n'
    "    return 'ok'\n"
)


def test_warnings_fail_only_with_strict(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "nested_app.py").write_text(NESTED_APP)  # Gemini refuses its $ref: a warning
    target = str(tmp_path / "nested_app.py")
    assert runner.invoke(main, ["tools", target, "--check"]).exit_code == 0
    strict = runner.invoke(main, ["tools", target, "--check", "--strict"])
    assert strict.exit_code == 1
    assert "(--strict)" in strict.stderr
    only_openai = ["tools", target, "--check", "--strict", "--provider", "openai"]
    assert runner.invoke(main, only_openai).exit_code == 0


def test_check_json_is_one_document(runner: CliRunner) -> None:
    result = runner.invoke(main, ["tools", BAD_APP, "--check", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["ok"], report["tools"], report["errors"], report["warnings"]) == (
        False,
        4,
        3,
        1,
    )
    assert report["findings"][2] == {
        "severity": "error",
        "tool": "untyped",
        "path": "parameters.properties.order_number",
        "message": report["findings"][2]["message"],
    }


def test_a_definitions_file_can_be_checked_and_printed(runner: CliRunner, tmp_path: Path) -> None:
    entry = {
        "name": "ping",
        "description": "Check the line.",
        "parameters": {"type": "object", "properties": {"x": {}}},
    }
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"assistant": {"llm_config": {"tools": [entry]}}}))
    result = runner.invoke(main, ["tools", str(path), "--check"])
    assert result.exit_code == 1
    assert result.stdout.startswith('error: ping: parameters.properties.x: no "type"')
    printed = runner.invoke(main, ["tools", str(path)])
    assert json.loads(printed.stdout) == [entry]


def test_diff_prints_the_renamed_parameter_and_exits_1(runner: CliRunner) -> None:
    target = str(ROOT / "examples" / "appointments.py")
    result = runner.invoke(main, ["tools", target, "--url", URL, "--diff", RENAMED])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "book_appointment: parameters.slot: renamed: the assistant calls it 'time_slot' (did you "
        "mean 'slot'?); paste the app's definition"
    ]
    assert "DRIFT: 1 difference(s) in 1 tool(s)" in result.stderr


def test_diff_json_and_a_matching_assistant(runner: CliRunner, tmp_path: Path) -> None:
    target = str(ROOT / "examples" / "appointments.py")
    result = runner.invoke(main, ["tools", target, "--url", URL, "--diff", RENAMED, "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["same"] is False
    assert [d["path"] for d in report["differences"]] == ["parameters.slot"]
    exported = runner.invoke(main, ["tools", target, "--url", URL]).stdout
    same = runner.invoke(main, ["tools", target, "--url", URL, "--diff", "-"], input=exported)
    assert same.exit_code == 0, same.output
    assert "SAME: stdin carries the app's 2 tool(s)" in same.stderr
    moved = runner.invoke(main, ["tools", target, "--url", URL + "/v2", "--diff", RENAMED])
    assert moved.stdout.count(": url: the assistant calls") == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--check", "--diff", RENAMED], "do not combine"),
        (["--strict"], "--strict only applies to --check"),
        (["--provider", "openai"], "--provider only applies to --check"),
        (["--diff", "missing.json"], "cannot read 'missing.json'"),
        (["--diff", __file__], "not JSON"),
        (["--diff", str(ROOT / "tests" / "fixtures" / "tool-calls.json")], "expected an assistant"),
        (["--check", "--provider", "anthropic"], "'anthropic' is not one of"),
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, arguments: list[str], message: str) -> None:
    result = runner.invoke(main, ["tools", str(ROOT / "examples" / "quickstart.py"), *arguments])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.slow
def test_check_reads_measured_latency_from_a_running_app(runner: CliRunner, tmp_path: Path) -> None:
    from tests.helpers.servers import post, running_server
    from voicehooks.testing import tool_call, tool_calls

    secret = "whsec_live_server_tests"
    env = {"VOICEHOOKS_SECRET": secret}
    with running_server("tests/apps/measured.py", tmp_path, env=env) as server:
        for count in ("1", "2", 3, 4, 5, 6):  # two of them sent as strings: coerced
            status, _, _ = post(
                server,
                tool_calls(tool_call("check_stock", {"part": "chain", "count": count})),
                secret=secret,
            )
            assert status == 200
        both = tool_calls(tool_call("opening_hours", {}), tool_call("invented", {"x": 1}))
        post(server, both, secret=secret)
        target = str(ROOT / "tests" / "apps" / "measured.py")
        check = ["tools", target, "--check", "--url", server.url + "/", "--slow-seconds", "0.1"]
        result = runner.invoke(main, check)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            "warning: check_stock: latency: 95% of 6 measured calls took up to "
            f"{float(result.stdout.split('up to ')[1].split(' s')[0]):.1f} s of silence: give it "
            "an interim message the assistant says meanwhile, or make it faster"
        ]
        assert "with measured latencies" in result.stderr
        assert runner.invoke(main, [*check, "--strict"]).exit_code == 1
        status, _, body = post(
            server, b"", secret=secret, method="GET", path="/_voicehooks/tools.json", signed=False
        )
        report = json.loads(body)
        assert status == 200
        assert set(report["tools"]) == {"check_stock", "opening_hours", "(unregistered)"}
        assert report["tools"]["check_stock"]["coercions"] == {"string_to_integer": 2}
        assert report["tools"]["check_stock"]["p50_seconds"] >= 0.1
        from voicehooks.cli.tools import fetch_stats

        # The URL the platform calls may end with the app's own path: the root is above it.
        assert "check_stock" in fetch_stats(server.url + "/hooks/", "/hooks")["tools"]
        not_served = runner.invoke(
            main, ["tools", target, "--check", "--url", server.url + "/nothing-here/"]
        )
        assert not_served.exit_code == 1
        assert (
            "answered 404: serve it with VoiceHooks(observers=[ToolStats()])" in not_served.output
        )
    unreachable = runner.invoke(main, ["tools", target, "--check", "--url", server.url])
    assert unreachable.exit_code == 1
    assert "cannot read" in unreachable.output
    bad = runner.invoke(main, ["tools", target, "--check", "--url", "ftp://x/"])
    assert bad.exit_code == 2


@pytest.mark.slow
def test_assistant_fetches_the_saved_configuration_and_diffs_it(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicehooks.testing import FakePlatform

    platform = FakePlatform()
    saved = json.loads(Path(RENAMED).read_text())["assistant"]
    platform.add_assistant("asst_renamed", saved)
    platform.add_assistant("asst_empty", {"name": "No tools yet"})
    target = str(ROOT / "examples" / "appointments.py")
    with platform.serve() as base_url:
        monkeypatch.setenv("VOICEHOOKS_API_URL", base_url)
        monkeypatch.setenv("VOICEHOOKS_API_KEY", platform.api_key)
        result = runner.invoke(main, ["tools", target, "--url", URL, "--assistant", "asst_renamed"])
        assert result.exit_code == 1, result.output
        assert result.stdout.splitlines() == [
            "book_appointment: parameters.slot: renamed: the assistant calls it 'time_slot' "
            "(did you mean 'slot'?); paste the app's definition"
        ]
        assert "between the app and assistant asst_renamed" in result.stderr
        empty = runner.invoke(main, ["tools", target, "--assistant", "asst_empty", "--json"])
        assert empty.exit_code == 1
        assert [d["message"][:26] for d in json.loads(empty.stdout)["differences"]] == [
            "missing in the assistant: ",
            "missing in the assistant: ",
        ]
        unknown = runner.invoke(main, ["tools", target, "--assistant", "asst_nobody"])
        assert unknown.exit_code == 2
        assert "cannot fetch assistant 'asst_nobody'" in unknown.output
        monkeypatch.setenv("VOICEHOOKS_API_KEY", "sk_wrong_key")
        refused = runner.invoke(main, ["tools", target, "--assistant", "asst_renamed"])
        assert refused.exit_code == 2
        assert "401" in refused.output
        assert "sk_wrong_key" not in refused.output
    monkeypatch.delenv("VOICEHOOKS_API_KEY")
    no_key = runner.invoke(main, ["tools", target, "--assistant", "asst_renamed"])
    assert no_key.exit_code == 2
    assert "VOICEHOOKS_API_KEY" in no_key.output
    both = runner.invoke(main, ["tools", target, "--assistant", "a", "--diff", RENAMED])
    assert both.exit_code == 2


APPOINTMENTS = str(ROOT / "examples" / "appointments.py")
WORKFLOW: dict[str, Any] = {
    "version": 1,
    "entry_node": "greet",
    "nodes": [
        {
            "id": "greet",
            "type": "conversation",
            "instructions": "Greet.",
            "tools": [{"type": "end_call"}],
        },
        {"id": "slots", "type": "tool", "tool_name": "available_slot", "arguments": {}},
        {
            "id": "lookup",
            "type": "tool",
            "tool_name": "available_slots",
            "arguments": {"day": "tomorrow"},
        },
        {
            "id": "today",
            "type": "tool",
            "tool_name": "available_slots",
            "arguments": {"day": "2030-01-07"},
        },
        {"id": "crm", "type": "tool", "tool_name": "crm_lookup", "url": "https://crm.example.org/"},
        {"id": "bye", "type": "end"},
    ],
}
WORKFLOW_LINES = [
    "node slots: tool_name 'available_slot' is not a tool of the app (did you mean "
    "'available_slots'?)",
    "node lookup: available_slots: static arguments: The arguments for available_slots were "
    "not usable: the argument 'day' must be a date as YYYY-MM-DD, for example ",
]


def test_a_workflow_file_is_checked_one_line_per_problem(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps({"workflow": {"id": "wf_1", "definition": WORKFLOW}}))
    arguments = ["tools", APPOINTMENTS, "--url", URL, "--workflow-file", str(path)]
    result = runner.invoke(main, arguments)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0] == WORKFLOW_LINES[0]
    assert lines[1].startswith(WORKFLOW_LINES[1])
    assert f"DRIFT: 2 problem(s) in the nodes of {path}" in result.stderr
    as_json = runner.invoke(main, [*arguments, "--json"])
    assert [p["node"] for p in json.loads(as_json.stdout)["problems"]] == ["slots", "lookup"]
    fixed = copy.deepcopy(WORKFLOW)
    fixed["nodes"] = [n for n in fixed["nodes"] if n["id"] not in ("slots", "lookup")]
    path.write_text(json.dumps(fixed))
    same = runner.invoke(main, arguments)
    assert same.exit_code == 0, same.output
    assert "SAME: the 4 node(s)" in same.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--workflow-file", "missing.json"], "cannot read 'missing.json'"),
        (["--workflow", "a", "--workflow-file", "b.json"], "do not combine"),
        (["--diff"], "--diff needs a FILE"),
        (["--check", "--workflow", "a"], "do not combine"),
    ],
)
def test_workflow_usage_errors_exit_2(
    runner: CliRunner, arguments: list[str], message: str
) -> None:
    result = runner.invoke(main, ["tools", APPOINTMENTS, *arguments])
    assert result.exit_code == 2
    assert message in result.output
    on_json = runner.invoke(main, ["tools", RENAMED, "--workflow", "wf_1"])
    assert on_json.exit_code == 2
    assert "give the app as TARGET" in on_json.output


def test_diff_then_workflow_reads_it_from_the_platform(runner: CliRunner) -> None:
    from voicehooks.testing import FakePlatform

    platform = FakePlatform()
    platform.add_workflow("wf_1", WORKFLOW)
    arguments = ["tools", APPOINTMENTS, "--url", URL, "--diff", "--workflow", "wf_1"]
    result = runner.invoke(main, arguments, obj=platform.client())
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0] == WORKFLOW_LINES[0]
    assert "in the nodes of workflow wf_1" in result.stderr
    missing = runner.invoke(main, [*arguments[:-1], "wf_2"], obj=platform.client())
    assert missing.exit_code == 2
    assert "cannot fetch workflow 'wf_2': not found (404)" in missing.output


def test_check_lints_an_exported_assistants_mcp_attachments(
    runner: CliRunner, tmp_path: Path
) -> None:
    saved = json.loads(Path(RENAMED).read_text())
    tools = saved["assistant"]["llm_config"]["tools"]
    tools.append({"type": "mcp", "mcp_server_id": "mcp_1", "allowed_tools": ["t"] * 26})
    path = tmp_path / "assistant.json"
    path.write_text(json.dumps(saved))
    result = runner.invoke(main, ["tools", str(path), "--check"])
    assert result.exit_code == 1
    assert (
        "error: mcp mcp_1: allowed_tools: 26 tools; the platform accepts at most 25 per MCP "
        "attachment: name only those the assistant needs"
    ) in result.stdout.splitlines()
