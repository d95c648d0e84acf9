"""``voicehooks run``: its options, their environment variables, and a real uvicorn behind them."""

from __future__ import annotations

import asyncio
import http.client
import re
from pathlib import Path

import msgspec
import pytest
import uvloop
from click.testing import CliRunner

from tests.helpers.paths import ROOT
from tests.helpers.servers import running_server
from voicehooks import sign
from voicehooks.cli import main, serving
from voicehooks.core import environment
from voicehooks.testing import status_update

SECRET = "whsec_cli_run"
PROXIED = "tests/apps/proxied.py"
QUICKSTART = str(ROOT / "examples" / "quickstart.py")
ENVIRONMENT = {
    "VOICEHOOKS_HOST": ("--host", "0.0.0.0", "host", "0.0.0.0"),
    "VOICEHOOKS_PORT": ("--port", "8123", "port", 8123),
    "VOICEHOOKS_WORKERS": ("--workers", "3", "workers", 3),
    "VOICEHOOKS_LOG_LEVEL": ("--log-level", "warning", "log_level", "warning"),
    "VOICEHOOKS_FORWARDED_ALLOW_IPS": (
        "--forwarded-allow-ips",
        "10.0.0.5",
        "forwarded_allow_ips",
        "10.0.0.5",
    ),
    "VOICEHOOKS_ROOT_PATH": ("--root-path", "/hooks", "root_path", "/hooks"),
}


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """What ``voicehooks run`` hands to ``uvicorn.run``, which is not called."""
    import uvicorn

    calls: list[dict[str, object]] = []
    monkeypatch.setenv(environment.RUN_TARGET, "")  # restored after the test
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    for name in [*ENVIRONMENT, "VOICEHOOKS_PROXY_HEADERS", "VOICEHOOKS_RELOAD"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    return calls


def test_help_names_the_environment_variable_of_every_option() -> None:
    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    for name in [*ENVIRONMENT, "VOICEHOOKS_PROXY_HEADERS", "VOICEHOOKS_RELOAD"]:
        assert name in re.sub(r"\s+", "", help_text), name
    for option in ("--proxy-headers / --no-proxy-headers", "--forwarded-allow-ips", "--root-path"):
        assert option in help_text


def test_the_defaults_are_uvicorn_s(served: list[dict[str, object]]) -> None:
    assert CliRunner().invoke(main, ["run", QUICKSTART]).exit_code == 0
    (options,) = served
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] is None  # uvicorn: $FORWARDED_ALLOW_IPS or loopback
    assert options["root_path"] == ""
    assert options["http"] == serving.http_parser()


def test_every_option_comes_from_its_environment_variable(
    served: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, (_, value, _, _) in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VOICEHOOKS_PROXY_HEADERS", "false")
    result = CliRunner().invoke(main, ["run", QUICKSTART])
    assert result.exit_code == 0, result.output
    (options,) = served
    for _, (_, _, key, expected) in ENVIRONMENT.items():
        assert options[key] == expected, key
    assert options["proxy_headers"] is False


def test_the_command_line_wins_over_the_environment_and_an_env_file_feeds_it(
    served: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VOICEHOOKS_PORT", "8001")
    env_file = tmp_path / ".env"
    env_file.write_text("VOICEHOOKS_ROOT_PATH=/from-file\nVOICEHOOKS_HOST=10.1.1.1\n")
    args = ["run", QUICKSTART, "--port", "8002", "--env-file", str(env_file), "--host", "::1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (options,) = served
    assert (options["port"], options["root_path"], options["host"]) == (8002, "/from-file", "::1")


@pytest.mark.parametrize("root_path", ["hooks", "/hooks/"])
def test_a_root_path_must_be_a_path_without_a_trailing_slash(
    served: list[dict[str, object]], root_path: str
) -> None:
    result = CliRunner().invoke(main, ["run", QUICKSTART, "--root-path", root_path])
    assert result.exit_code == 2
    assert "write a path like /hooks" in result.output
    assert served == []


# -- over a real socket ------------------------------------------------------------------


def post_as_proxy(port: int, headers: dict[str, str]) -> int:
    """Post a signed status-update from 127.0.0.1, the way a proxy in front would."""
    body = msgspec.json.encode(status_update())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers={**sign(body, SECRET), **headers})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "client", "scheme"),
    [
        # 127.0.0.1 is trusted by default: the forwarded address and scheme are the request's.
        ([], {"VOICEHOOKS_ROOT_PATH": "/hooks"}, "203.0.113.7", "https"),
        (["--forwarded-allow-ips", "10.9.9.9"], {}, "127.0.0.1", "http"),
        (
            [],
            {"VOICEHOOKS_PROXY_HEADERS": "0", "VOICEHOOKS_ROOT_PATH": "/hooks"},
            "127.0.0.1",
            "http",
        ),
    ],
    ids=["trusted-proxy", "untrusted-proxy", "no-proxy-headers"],
)
def test_behind_a_proxy_uvicorn_gets_the_options_and_the_app_answers_at_its_path(
    tmp_path: Path, args: list[str], env: dict[str, str], client: str, scheme: str
) -> None:
    variables = {"VOICEHOOKS_SECRET": SECRET, **env}
    with running_server(
        PROXIED, tmp_path, args=["--root-path", "/hooks", *args], env=variables
    ) as server:
        # The proxy strips /hooks and forwards "/"; uvicorn puts the prefix back in the path.
        assert post_as_proxy(server.port, FORWARDED) == 200
        assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM once drained
    assert f"scope client={client} scheme={scheme} root_path=/hooks path=/hooks/" in server.log()


@pytest.mark.slow
def test_the_server_says_which_loop_and_parser_it_runs_on(tmp_path: Path) -> None:
    with running_server(PROXIED, tmp_path, env={"VOICEHOOKS_SECRET": SECRET}) as server:
        assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM once drained
    lines = [line for line in server.log().splitlines() if "event loop" in line]
    # The development environment has the fast stack, as a default install does.
    (line,) = lines
    assert line.endswith(
        "INFO voicehooks: running on the uvloop event loop and the httptools HTTP parser"
    )


@pytest.mark.parametrize(
    ("loop_factory", "http", "expected"),
    [
        (asyncio.new_event_loop, "h11", "the asyncio event loop and the h11 HTTP parser (uvloop"),
        (uvloop.new_event_loop, "httptools", "the uvloop event loop and the httptools HTTP parser"),
    ],
)
def test_a_slow_stack_is_named_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    loop_factory: object,
    http: str,
    expected: str,
) -> None:
    import gc

    (tmp_path / "stack_app.py").write_text(
        "from voicehooks import VoiceHooks\napp = VoiceHooks(secret='whsec_stack')\n"
    )
    monkeypatch.setenv(environment.RUN_TARGET, str(tmp_path / "stack_app.py"))
    monkeypatch.setattr(serving, "http_parser", lambda: http)

    async def load() -> None:
        serving.app()

    assert callable(loop_factory)
    with (
        caplog.at_level("INFO", logger="voicehooks"),
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        try:
            runner.run(load())
        finally:
            gc.unfreeze()
    (message,) = [r.getMessage() for r in caplog.records if "event loop" in r.getMessage()]
    assert expected in message
    assert ("serve about 3x faster" in message) is (http == "h11")
