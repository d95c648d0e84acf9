"""The voicehooks command: help, version, routes, tools, target errors and --env-file."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import voicehooks
from tests.helpers.paths import ROOT
from voicehooks.cli import main, read_env_file

QUICKSTART = str(ROOT / "examples" / "quickstart.py")
COMMANDS = [
    "deploy",
    "dev",
    "queue",
    "replay",
    "routes",
    "run",
    "send",
    "simulate",
    "tools",
    "verify",
    "worker",
]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner in a shell with no secret configured."""
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    monkeypatch.delenv("VOICEHOOKS_SECRET_FILE", raising=False)
    return CliRunner()


def test_the_group_lists_every_command_with_examples(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert sorted(main.list_commands(click.Context(main))) == COMMANDS
    for command in COMMANDS:
        assert f"  {command}" in result.output
    assert "Examples:" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(runner: CliRunner, command: str) -> None:
    result = runner.invoke(main, [command, "-h"])
    assert result.exit_code == 0
    assert "Example" in result.output
    assert f"voicehooks {command}" in result.output


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(runner: CliRunner, flag: str) -> None:
    result = runner.invoke(main, [flag])
    assert result.exit_code == 0
    assert result.output == f"voicehooks, version {voicehooks.__version__}\n"


def test_routes_describes_the_quickstart_without_a_secret(runner: CliRunner) -> None:
    result = runner.invoke(main, ["routes", QUICKSTART])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert lines[0] == ["POST", "/"]
    assert lines[1] == ["KIND", "NAME", "FUNCTION", "NOTE"]
    assert lines[2] == ["event", "end-of-call-report", "quickstart:store_report"]
    assert lines[3] == ["tool", "check_repair_status", "quickstart:check_repair_status"]
    assert "VOICEHOOKS_SECRET" not in os.environ  # the placeholder did not leak


def test_routes_of_an_empty_app_says_what_to_add(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "empty_app.py"
    target.write_text("from voicehooks import VoiceHooks\napp = VoiceHooks()\n")
    result = runner.invoke(main, ["routes", str(target)])
    assert result.exit_code == 0
    assert "nothing registered: add @app.tool functions or @app.on handlers" in result.output


def test_tools_prints_the_definitions_with_the_url(runner: CliRunner) -> None:
    result = runner.invoke(main, ["tools", QUICKSTART, "--url", "https://hooks.example.com/"])
    assert result.exit_code == 0, result.output
    (definition,) = json.loads(result.output)
    assert definition["name"] == "check_repair_status"
    assert definition["url"] == "https://hooks.example.com/"
    assert definition["parameters"]["required"] == ["order_number"]
    assert definition["parameters"]["properties"]["order_number"]["description"] == (
        "The work order number, like WO-2291."
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing_file.py", "no such file"),
        ("no_such_module_anywhere:app", "no such module"),
        (":app", "is not a target"),
        (f"{QUICKSTART}:nope", "has no attribute 'nope'"),
        (f"{QUICKSTART}:log", "is a Logger, not a VoiceHooks app"),
    ],
)
def test_a_bad_target_is_one_line_and_exit_code_2(
    runner: CliRunner, target: str, message: str
) -> None:
    result = runner.invoke(main, ["routes", target])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_run_refuses_an_app_without_a_secret_and_says_how(
    runner: CliRunner, tmp_path: Path
) -> None:
    target = tmp_path / "secretless_app.py"
    target.write_text("from voicehooks import VoiceHooks\napp = VoiceHooks()\n")
    result = runner.invoke(main, ["run", str(target)])
    assert result.exit_code == 2
    assert "No webhook secret. Set VOICEHOOKS_SECRET" in result.output


def test_a_parent_app_is_pointed_to_uvicorn(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEHOOKS_SECRET", "whsec_x")
    result = runner.invoke(main, ["routes", str(ROOT / "examples" / "fastapi_mount.py")])
    assert result.exit_code == 2
    assert "is a FastAPI, not a VoiceHooks app (serve a parent app" in result.output


# -- --env-file --------------------------------------------------------------------------


def test_read_env_file_understands_dotenv_lines(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# secrets\n"
        "\n"
        "VOICEHOOKS_SECRET=whsec_a,whsec_b\n"
        "export QUOTED='spaces inside # kept'\n"
        'DOUBLE="x=y"\n'
        "COMMENTED=value # trailing comment\n"
        "EMPTY=\n"
    )
    assert read_env_file(path) == {
        "VOICEHOOKS_SECRET": "whsec_a,whsec_b",
        "QUOTED": "spaces inside # kept",
        "DOUBLE": "x=y",
        "COMMENTED": "value",
        "EMPTY": "",
    }


def test_a_bad_env_file_line_is_named_without_its_value(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("OK=1\nwhsec_pasted_alone\n")
    result = runner.invoke(main, ["routes", QUICKSTART, "--env-file", str(path)])
    assert result.exit_code == 2
    assert "line 2 is not NAME=value" in result.output
    assert "whsec_pasted_alone" not in result.output


def test_a_missing_env_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["tools", QUICKSTART, "--env-file", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_the_env_file_applies_to_the_command_only(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEHOOKS_SECRET", "from-the-shell")
    path = tmp_path / ".env"
    path.write_text("VOICEHOOKS_SECRET=from-the-file\nVOICEHOOKS_CLI_TEST_EXTRA=1\n")
    target = tmp_path / "env_probe_app.py"
    target.write_text(
        "import os\nfrom voicehooks import VoiceHooks\n"
        "app = VoiceHooks()\n"
        "SEEN = os.environ['VOICEHOOKS_SECRET']\n"
    )
    result = runner.invoke(main, ["routes", f"{target}:app", "--env-file", str(path)])
    assert result.exit_code == 0, result.output
    import env_probe_app  # type: ignore[import-not-found]  # loaded by the command

    assert env_probe_app.SEEN == "from-the-file"
    assert os.environ["VOICEHOOKS_SECRET"] == "from-the-shell"
    assert "VOICEHOOKS_CLI_TEST_EXTRA" not in os.environ


def test_a_misconfigured_app_is_one_line_and_exit_code_2(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "misconfigured_app.py").write_text(
        "from voicehooks import VoiceHooks\napp = VoiceHooks()\n@app.on('hang-up')\n"
        "def f() -> None: ...\n"
    )
    result = runner.invoke(main, ["routes", str(tmp_path / "misconfigured_app")])  # .py implied
    assert result.exit_code == 2
    assert "misconfigured_app: f: unknown event 'hang-up'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("source", "last_line"),
    [
        ("import no_such_dependency_xyz\n", "ModuleNotFoundError: No module named"),
        ("def f():\n    return 1 / 0\n\nf()\n", "ZeroDivisionError: division by zero"),
        ("from helper_of_broken_app import nothing\n", "ImportError: cannot import name"),
    ],
)
def test_an_app_that_raises_while_importing_shows_its_traceback(
    runner: CliRunner, tmp_path: Path, source: str, last_line: str
) -> None:
    (tmp_path / "helper_of_broken_app.py").write_text("something = 1\n")
    (tmp_path / "broken_app.py").write_text(source)
    result = runner.invoke(main, ["routes", str(tmp_path / "broken_app.py")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    # From the app's own code on: no frame of the CLI or of importlib above it.
    assert lines[:2] == [
        "Traceback (most recent call last):",
        f'  File "{tmp_path / "broken_app.py"}", line {source.count(chr(10))}, in <module>',
    ]
    assert last_line in result.output
    assert lines[-1].startswith("Error: importing 'broken_app' raised ")
    assert lines[-1].endswith("Error (traceback above)")


def test_a_server_process_raises_the_apps_own_import_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from voicehooks.cli import serving
    from voicehooks.core import environment

    (tmp_path / "crashing_served_app.py").write_text("raise LookupError('no config')\n")
    monkeypatch.setenv(environment.RUN_TARGET, str(tmp_path / "crashing_served_app.py"))
    with pytest.raises(LookupError, match="no config"):
        serving.app()  # uvicorn prints it with its traceback, as for any factory


def test_run_hands_uvicorn_the_app_and_a_log_config_for_the_apps_own_loggers(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    calls: list[dict[str, object]] = []
    monkeypatch.setenv("VOICEHOOKS_RUN_TARGET", "")  # restored after the test
    monkeypatch.setattr(
        uvicorn, "run", lambda app, **options: calls.append({"app": app, **options})
    )
    env_file = tmp_path / ".env"
    env_file.write_text("VOICEHOOKS_SECRET=whsec_from_file\n")
    args = ["run", QUICKSTART, "--port", "9999", "--workers", "2", "--log-level", "debug"]
    result = runner.invoke(main, [*args, "--env-file", str(env_file)])
    assert result.exit_code == 0, result.output
    (options,) = calls
    assert (options["app"], options["factory"]) == ("voicehooks.cli.serving:app", True)
    assert os.environ["VOICEHOOKS_RUN_TARGET"] == QUICKSTART
    assert (options["port"], options["workers"], options["host"]) == (9999, 2, "127.0.0.1")
    assert options["app_dir"] == str(ROOT / "examples")
    log_config = options["log_config"]
    assert isinstance(log_config, dict)
    assert log_config["root"] == {"handlers": ["stderr"], "level": "DEBUG"}
    assert log_config["formatters"]["voicehooks"]["()"] == "voicehooks.core.logs.TextFormatter"


def served_options(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> tuple[dict[str, object], str]:
    """Run ``voicehooks run QUICKSTART *args`` with uvicorn.run replaced by a recorder."""
    import uvicorn

    calls: list[dict[str, object]] = []

    def record(app: str, **options: object) -> None:
        environ = {k: os.environ.get(k) for k in ("VOICEHOOKS_METRICS", "PROMETHEUS_MULTIPROC_DIR")}
        directory = environ["PROMETHEUS_MULTIPROC_DIR"] or ""
        calls.append(
            {
                **options,
                "environ": environ,
                "dir_exists": bool(directory) and os.path.isdir(directory),
            }
        )

    monkeypatch.setenv("VOICEHOOKS_RUN_TARGET", "")
    monkeypatch.setenv("VOICEHOOKS_SECRET", "whsec_cli_options")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("VOICEHOOKS_METRICS", raising=False)
    monkeypatch.setattr(uvicorn, "run", record)
    result = runner.invoke(main, ["run", QUICKSTART, *args])
    assert len(calls) <= 1
    return (calls[0] if calls else {}), result.output


def test_run_with_json_logs_formats_every_line_as_json(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    options, _ = served_options(runner, monkeypatch, ["--log-format", "json"])
    log_config = options["log_config"]
    assert isinstance(log_config, dict)
    assert log_config["formatters"]["voicehooks"]["()"] == "voicehooks.core.logs.JSONFormatter"


def test_run_passes_a_log_config_file_through(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "logging.yaml"
    config.write_text("version: 1\n")
    options, _ = served_options(runner, monkeypatch, ["--log-config", str(config)])
    assert options["log_config"] == str(config)


def test_run_refuses_a_log_config_together_with_a_log_format(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "logging.json"
    config.write_text("{}")
    options, output = served_options(
        runner, monkeypatch, ["--log-config", str(config), "--log-format", "json"]
    )
    assert not options
    assert "--log-config replaces --log-format" in output


@pytest.mark.parametrize(
    ("args", "multiprocess"),
    [(["--metrics"], False), (["--metrics", "--workers", "2"], True)],
)
def test_run_with_metrics_switches_them_on_and_owns_the_multiprocess_directory(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, args: list[str], multiprocess: bool
) -> None:
    options, _ = served_options(runner, monkeypatch, args)
    environ = options["environ"]
    assert isinstance(environ, dict)
    assert environ["VOICEHOOKS_METRICS"] == "1"
    assert bool(environ["PROMETHEUS_MULTIPROC_DIR"]) is multiprocess
    assert options["dir_exists"] is multiprocess
    if multiprocess:
        assert not os.path.exists(environ["PROMETHEUS_MULTIPROC_DIR"])  # removed at exit
    assert "VOICEHOOKS_METRICS" not in os.environ


def test_run_with_metrics_without_prometheus_client_names_the_extra(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    options, output = served_options(runner, monkeypatch, ["--metrics"])
    assert not options
    assert "voicehooks[metrics]" in output


def test_an_unreadable_secret_file_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEHOOKS_SECRET_FILE", str(tmp_path / "missing-secret"))
    result = runner.invoke(main, ["send", "status-update"])
    assert result.exit_code == 2
    assert "VOICEHOOKS_SECRET_FILE=" in result.output
    assert "cannot be read" in result.output


@pytest.mark.parametrize(
    ("workers", "redis_url", "warned"), [(2, None, True), (1, None, False), (2, "redis://x", False)]
)
def test_run_warns_when_workers_would_not_share_duplicate_suppression(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    workers: int,
    redis_url: str | None,
    warned: bool,
) -> None:
    import uvicorn

    name = f"workers_app_{workers}_{bool(redis_url)}"  # a fresh module: the store is per import
    (tmp_path / f"{name}.py").write_text("from voicehooks import VoiceHooks\napp = VoiceHooks()\n")

    served: list[str] = []
    monkeypatch.setenv("VOICEHOOKS_RUN_TARGET", "")  # restored after the test
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))
    monkeypatch.setenv("VOICEHOOKS_SECRET", "whsec_cli_workers")
    if redis_url:
        monkeypatch.setenv("VOICEHOOKS_REDIS_URL", redis_url)
    result = runner.invoke(main, ["run", str(tmp_path / f"{name}.py"), "--workers", str(workers)])
    assert result.exit_code == 0, result.output
    assert served == ["voicehooks.cli.serving:app"]
    assert ("in-memory duplicate store" in result.output) is warned


def test_each_server_process_loads_the_target_and_freezes_the_startup_heap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import gc

    from voicehooks.cli import serving
    from voicehooks.core import environment

    (tmp_path / "served_app.py").write_text(
        "from voicehooks import VoiceHooks\napp = VoiceHooks(secret='whsec_served')\n"
    )
    monkeypatch.setenv(environment.RUN_TARGET, str(tmp_path / "served_app.py"))

    async def load() -> object:
        return serving.app()  # uvicorn calls the factory on its event loop

    try:
        app = asyncio.run(load())
        assert isinstance(app, voicehooks.VoiceHooks)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
