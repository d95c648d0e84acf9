"""Every example is imported fresh and driven with signed events, in memory."""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import logging
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from tests.helpers.paths import ROOT
from voicehooks import VoiceHooks
from voicehooks.testing import FakePlatform, WebhookClient, run_scenario, tool_call

pytestmark = pytest.mark.anyio

EXAMPLES = ROOT / "examples"


@pytest.fixture
def load(secret: str) -> Iterator[Any]:
    """Import an example by file name as a fresh module (its globals start empty)."""
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        module_name = f"example_{name}_{len(loaded)}"
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # msgspec and typing resolve annotations through it
        spec.loader.exec_module(module)
        loaded.append(module_name)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


def test_every_example_says_what_it_shows_and_how_to_run_it() -> None:
    examples = sorted(path.stem for path in EXAMPLES.glob("*.py"))
    assert examples == [
        "appointments",
        "fastapi_mount",
        "live_call",
        "quickstart",
        "reports_sqlite",
    ]
    for name in examples:
        doc = (EXAMPLES / f"{name}.py").read_text().split('"""')[1]
        assert "What it shows" in doc or "shows" in doc, name
        assert "Run it" in doc, name
        assert "voicehooks send" in doc, name


# -- quickstart --------------------------------------------------------------------------


async def test_quickstart_answers_the_repair_status(load: Any) -> None:
    quickstart = load("quickstart")
    async with WebhookClient(quickstart.app) as client:
        ready = await client.call_tool("check_repair_status", order_number="wo-2291 ")
        unknown = await client.call_tool("check_repair_status", order_number="WO-1")
    assert ready == {"order_number": "wo-2291 ", "status": "ready for pickup"}
    assert unknown == {"error": "There is no work order WO-1. Ask the caller to check the number."}


async def test_the_quickstart_scenario_passes_against_the_quickstart(load: Any) -> None:
    quickstart = load("quickstart")
    report = await run_scenario(EXAMPLES / "scenarios" / "quickstart.toml", quickstart.app)
    report.check()
    assert len(report.steps) == 8
    assert report.steps[0].event == "assistant-request"
    assert report.steps[-1].event == "end-of-call-report"


async def test_quickstart_logs_the_report_without_personal_data(
    load: Any, caplog: pytest.LogCaptureFixture
) -> None:
    quickstart = load("quickstart")
    caplog.set_level(logging.INFO, logger="quickstart")
    async with WebhookClient(quickstart.app) as client:
        response = await client.end_of_call_report(call_id="call-qs-1", duration_seconds=61)
        await client.wait_for_background()
    assert response.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "quickstart"]
    assert lines == ["call call-qs-1 ended after 61 s (user_hangup)"]


# -- appointments ------------------------------------------------------------------------

MONDAY = datetime.date(2026, 1, 12)


def at(appointments: Any, day: datetime.date, hour: int, minute: int = 0) -> None:
    moment = datetime.datetime.combine(day, datetime.time(hour, minute), appointments.WORKSHOP)
    appointments.now = lambda: moment


@pytest.mark.parametrize(
    ("day", "hour", "first_message"),
    [
        (MONDAY, 9, "Good morning, Rijwielhuis Kade workshop. Shall I book you in?"),
        (MONDAY, 17, "Good afternoon, Rijwielhuis Kade workshop. Shall I book you in?"),
        (
            MONDAY + datetime.timedelta(days=5),
            10,
            "Good morning, Rijwielhuis Kade workshop. Shall I book you in?",
        ),
    ],
)
async def test_appointments_greets_by_time_of_day_when_open(
    load: Any, day: datetime.date, hour: int, first_message: str
) -> None:
    appointments = load("appointments")
    at(appointments, day, hour)
    answer = await WebhookClient(appointments.app).assistant_request()
    assert answer == {
        "assistant_id": appointments.ASSISTANT_ID,
        "assistant_override": {"first_message": first_message},
    }


@pytest.mark.parametrize(
    ("day", "hour", "minute"),
    [
        (MONDAY, 8, 59),
        (MONDAY, 18, 0),
        (MONDAY + datetime.timedelta(days=5), 16, 0),  # Saturday closes at four
        (MONDAY + datetime.timedelta(days=6), 12, 0),  # Sunday
    ],
)
async def test_appointments_rejects_calls_outside_opening_hours(
    load: Any, day: datetime.date, hour: int, minute: int
) -> None:
    appointments = load("appointments")
    at(appointments, day, hour, minute)
    answer = await WebhookClient(appointments.app).assistant_request()
    assert answer == {"error": appointments.CLOSED_MESSAGE}


def test_appointments_tool_schema_carries_the_types(load: Any) -> None:
    appointments = load("appointments")
    app: VoiceHooks = appointments.app
    (book,) = [d for d in app.tool_definitions() if d["name"] == "book_appointment"]
    parameters = book["parameters"]
    assert parameters["required"] == ["day", "slot", "bike_brand"]
    properties = parameters["properties"]
    assert properties["day"]["format"] == "date"
    assert properties["slot"]["enum"] == list(appointments.SLOTS)
    assert properties["service"]["default"] == "maintenance"
    assert "context" not in properties  # injected, not the model's to fill
    assert "$defs" not in parameters  # flat: Gemini refuses a $ref
    assert sorted(properties["bike_kind"]["enum"]) == ["cargo", "city", "e-bike", "racing"]


FRIDAY = "2026-01-16"
BIKE = {"bike_brand": "Gazelle", "bike_kind": "e-bike"}


async def test_appointments_books_a_free_slot_and_refuses_a_taken_one(load: Any) -> None:
    appointments = load("appointments")
    at(appointments, MONDAY, 10)
    async with WebhookClient(appointments.app) as client:
        booked = await client.call_tool("book_appointment", day=FRIDAY, slot="14:30", **BIKE)
        again = await client.call_tool("book_appointment", day=FRIDAY, slot="14:30", **BIKE)
        free = await client.call_tool("available_slots", day=FRIDAY)
    assert booked == {"reference": "BK-1042", "day": FRIDAY, "slot": "14:30"}
    assert again == {
        "error": "14:30 is taken. Free times: 09:00, 10:30, 13:00, 16:00. "
        "Offer the caller one of them."
    }
    assert free == ["09:00", "10:30", "13:00", "16:00"]
    (booking,) = appointments.BOOKINGS.values()
    assert booking.bike == appointments.Bike("Gazelle", "e-bike")
    assert booking.callback_number == "+31655018342"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (
            {"day": "next Friday", "slot": "14:30", **BIKE},
            "'day' must be a date as YYYY-MM-DD",
        ),
        ({"day": FRIDAY, "slot": "14:45", **BIKE}, "'slot' must be one of \"09:00\""),
        ({"day": FRIDAY, "slot": "14:30", "bike_kind": "city"}, "'bike_brand' is missing"),
        ({"day": "2026-01-09", "slot": "14:30", **BIKE}, "has passed"),
        ({"day": "2026-01-18", "slot": "14:30", **BIKE}, "closed on Sundays"),
    ],
)
async def test_appointments_refuses_unusable_bookings_without_booking(
    load: Any, arguments: dict[str, Any], error: str
) -> None:
    appointments = load("appointments")
    at(appointments, MONDAY, 10)
    result = await WebhookClient(appointments.app).call_tool("book_appointment", **arguments)
    assert error in result["error"]
    assert appointments.BOOKINGS == {}


async def test_appointments_redelivered_booking_runs_once(load: Any) -> None:
    appointments = load("appointments")
    at(appointments, MONDAY, 10)
    call = tool_call("book_appointment", {"day": FRIDAY, "slot": "09:00", **BIKE})
    async with WebhookClient(appointments.app) as client:
        first = await client.call_tools(call, call_id="call-redelivered")
        second = await client.call_tools(call, call_id="call-redelivered")
    assert first == second == [{"reference": "BK-1042", "day": FRIDAY, "slot": "09:00"}]
    assert len(appointments.BOOKINGS) == 1


# -- reports_sqlite ----------------------------------------------------------------------


async def test_reports_are_stored_in_sqlite_after_the_answer(
    load: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "reports.sqlite3"
    monkeypatch.setenv("REPORTS_DB", str(database))
    reports_sqlite = load("reports_sqlite")
    async with WebhookClient(reports_sqlite.app) as client:
        first = await client.end_of_call_report(call_id="call-a", duration_seconds=42)
        second = await client.end_of_call_report(
            call_id="call-b", end_reason="max_duration", analysis=None, messages=[]
        )
        await client.wait_for_background()
        stored_before_shutdown = _rows(database)
    assert first.status_code == second.status_code == 200
    assert stored_before_shutdown == [
        ("call-a", "user_hangup", 42, '{"intent": "repair-status", "resolved": true}', 3),
        ("call-b", "max_duration", 95, None, 0),
    ]
    with pytest.raises(sqlite3.ProgrammingError):  # the lifespan closed it at shutdown
        reports_sqlite.app.state.reports.connection.execute("SELECT 1")


async def test_reports_handler_runs_in_a_worker_thread(
    load: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTS_DB", str(tmp_path / "reports.sqlite3"))
    reports_sqlite = load("reports_sqlite")
    threads: list[str] = []
    save = reports_sqlite.Reports.save

    def spy(self: Any, report: Any) -> None:
        import threading

        threads.append(threading.current_thread().name)
        save(self, report)

    monkeypatch.setattr(reports_sqlite.Reports, "save", spy)
    async with WebhookClient(reports_sqlite.app) as client:
        await client.end_of_call_report()
    import threading

    assert len(threads) == 1
    assert threads[0] != threading.main_thread().name


def _rows(database: Path) -> list[tuple[Any, ...]]:
    # closing(): a connection's own "with" commits but does not close it, and Python 3.13
    # warns about the unclosed connection wherever the garbage collector finds it: in
    # whichever test runs next (it failed the live-call example's test there, now and then).
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute(
            "SELECT call_id, end_reason, duration_seconds, analysis, message_count "
            "FROM reports ORDER BY call_id"
        ).fetchall()


# -- fastapi_mount -----------------------------------------------------------------------


async def test_fastapi_mount_serves_hooks_and_api_with_the_lifespan_composed(load: Any) -> None:
    fastapi_mount = load("fastapi_mount")
    hooks: VoiceHooks = fastapi_mount.hooks
    async with WebhookClient(fastapi_mount.app, path="/hooks/") as client:
        owned_inside = hooks.tasks.is_open  # the parent's lifespan entered hooks.lifespan()
        await client.status_update("in-progress", call_id="call-1")
        await client.status_update("in-progress", call_id="call-2")
        await client.status_update("ended", call_id="call-1")
        await client.wait_for_background()
        calls = await client.request("GET", "/calls", [], [])
    assert owned_inside
    assert not hooks.tasks.is_open
    assert calls.status_code == 200
    assert calls.json() == {"live": 1}
    assert {"call-2"} == fastapi_mount.LIVE_CALLS


async def test_fastapi_mount_rejects_unsigned_deliveries_at_the_mount_path(load: Any) -> None:
    fastapi_mount = load("fastapi_mount")
    client = WebhookClient(fastapi_mount.app, path="/hooks/", secret="not-the-secret")
    response = await client.status_update()
    assert response.status_code == 401
    assert not fastapi_mount.LIVE_CALLS


# -- live_call ---------------------------------------------------------------------------


async def test_live_call_answers_at_once_then_speaks_the_stock_into_the_call(
    load: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = FakePlatform()
    platform.end_call("call-gone")
    with platform.serve() as base_url:
        monkeypatch.setenv("VOICEHOOKS_API_URL", base_url)
        monkeypatch.setenv("VOICEHOOKS_API_KEY", platform.api_key)
        live = load("live_call")
        live.WAREHOUSE_SECONDS = 2.2
        async with WebhookClient(live.app) as client:
            answers: dict[str, Any] = {}

            async def ask(call_id: str, name: str, arguments: dict[str, Any]) -> None:
                (answers[call_id],) = await client.call_tools(
                    tool_call(name, arguments), call_id=call_id
                )

            async with anyio.create_task_group() as group:
                group.start_soon(ask, "call-ex", "check_stock", {"sku": "KB-7"})
                group.start_soon(ask, "call-gone", "check_stock", {"sku": "KB-9"})
                group.start_soon(ask, "call-help", "escalate", {})
            assert answers == {
                "call-ex": "One moment, I'm checking the stock.",
                "call-gone": "One moment, I'm checking the stock.",
                "call-help": "The call is being transferred.",
            }
            await client.wait_for_background()
    by_call = {r.call_id: r for r in platform.received()}
    assert by_call["call-ex"].body == {
        "type": "inject-context",
        "content": 'Result of the tool check_stock: {"sku":"KB-7","in_stock":4}',
        "trigger_response": True,
    }
    assert by_call["call-help"].body["type"] == "transfer"
    assert by_call["call-gone"].status == 409
    assert live.CALL_BACKS == ["call-gone"]


@pytest.mark.parametrize("example", sorted(path.name for path in EXAMPLES.glob("*.py")))
def test_every_example_passes_the_strict_tool_check_for_every_provider(
    example: str, secret: str
) -> None:
    from click.testing import CliRunner

    from voicehooks.cli import main

    target = str(EXAMPLES / example)
    if example == "fastapi_mount.py":
        target += ":hooks"  # the VoiceHooks app the FastAPI app mounts
    result = CliRunner().invoke(main, ["tools", target, "--check", "--strict"])
    assert result.exit_code == 0, result.output
    assert "0 warning(s)" in result.output
