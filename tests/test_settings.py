"""voicehooks.settings: the values a VoiceHooks is configured with, and the old keywords' way
to them for one release."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest

from voicehooks import (
    Background,
    ConfigurationError,
    Deadlines,
    Duplicates,
    Limits,
    MemoryStore,
    Platform,
    Privacy,
    Reconciliation,
    VoiceHooks,
)
from voicehooks.observe import Health, ToolStats
from voicehooks.observe.metrics import PrometheusObserver

SECRET = "whsec_settings"


def test_the_constructor_takes_at_most_thirteen_parameters() -> None:
    parameters = inspect.signature(VoiceHooks.__init__).parameters.values()
    # self is not one, nor **deprecated: the 0.1/0.2 keywords, gone in the next release
    named = [p for p in parameters if p.name != "self" and p.kind is not p.VAR_KEYWORD]
    assert len(named) <= 13  # privacy= and mcp= were the twelfth and thirteenth


@pytest.mark.parametrize(
    ("old", "value", "read"),
    [
        ("tool_timeout_seconds", 3.0, lambda app: app.deadlines.tool_seconds),
        ("assistant_request_timeout_seconds", 2.0, lambda a: a.deadlines.assistant_request_seconds),
        ("body_timeout_seconds", 4.0, lambda app: app.deadlines.body_seconds),
        ("background_timeout_seconds", None, lambda app: app.deadlines.background_seconds),
        ("shutdown_grace_seconds", 1.0, lambda app: app.tasks.grace_seconds),
        ("max_body_bytes", 512, lambda app: app.limits.max_body_bytes),
        ("tolerance_seconds", 60.0, lambda app: app.verifier.tolerance_seconds),
        ("max_threads", 3, lambda app: app.limits.max_threads),
        ("max_background_threads", 2, lambda app: app.limits.max_background_threads),
        ("max_abandoned_threads", 1, lambda app: app.limits.max_abandoned_threads),
        ("max_background_jobs", 5, lambda app: app.runner.max_concurrency),
        ("max_queued_jobs", 6, lambda app: app.runner.max_queued),
        ("max_queued_bytes", 7_000, lambda app: app.runner.max_queued_bytes),
        ("queue_failure", "reject", lambda app: app.background.queue_failure),
        ("store_failure", "reject", lambda app: app.duplicates.store_failure),
        ("dedupe_ttl_seconds", 60.0, lambda app: app.duplicates.ttl_seconds),
        ("reconcile", Reconciliation(), lambda app: app.reconciler is not None),
    ],
)
def test_an_old_keyword_still_works_for_one_release_and_names_its_replacement(
    old: str, value: Any, read: Any
) -> None:
    with pytest.warns(DeprecationWarning, match=rf"VoiceHooks\({old}=\.\.\.\).*use VoiceHooks"):
        app = VoiceHooks(secret=SECRET, **{old: value})
    expected = True if old == "reconcile" else value
    assert read(app) == expected


def test_old_switches_become_settings_and_observers() -> None:
    store = MemoryStore()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        off = VoiceHooks(secret=SECRET, deduplicate=False)
        kept = VoiceHooks(secret=SECRET, store=store)
        observed = VoiceHooks(secret=SECRET, metrics=True, tool_stats=True)
    assert off.duplicates is None
    assert off.store is None
    assert kept.store is store
    kinds = {type(observer) for observer in observed.observers.observers}
    assert kinds == {PrometheusObserver, ToolStats, Health}  # Health: every app's probes


def test_what_has_no_new_home_fails_with_a_message_that_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match=r"app\.verifier\.clock"):
        VoiceHooks(secret=SECRET, clock=lambda: 0.0)
    with (
        pytest.raises(ConfigurationError, match="duplicates=None"),
        pytest.warns(DeprecationWarning, match=r"VoiceHooks\(store=\.\.\.\)"),
    ):
        VoiceHooks(secret=SECRET, duplicates=None, store=MemoryStore())
    with pytest.raises(TypeError, match="unexpected keyword argument 'tool_timeout'"):
        VoiceHooks(secret=SECRET, tool_timeout=3)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Deadlines(tool_seconds=0), r"Deadlines\(tool_seconds=\.\.\.\) must be > 0"),
        (lambda: Deadlines(background_seconds=-1), "background_seconds"),
        (lambda: Deadlines(shutdown_grace_seconds=-0.5), "shutdown_grace_seconds"),
        (lambda: Limits(max_threads=0), r"Limits\(max_threads=\.\.\.\)"),
        (lambda: Limits(timestamp_tolerance_seconds=0), "timestamp_tolerance_seconds"),
        (lambda: Background(max_running=0), r"Background\(max_running=\.\.\.\)"),
        (lambda: Background(queue_failure="drop"), "'process' or 'reject'"),  # type: ignore[arg-type]
        (lambda: Duplicates(ttl_seconds=0), r"Duplicates\(ttl_seconds=\.\.\.\)"),
        (lambda: Duplicates(store_failure="ignore"), "'process' or 'reject'"),  # type: ignore[arg-type]
        (lambda: Privacy(languages=("en", "xx")), r"Privacy\(languages=\.\.\.\): .*'xx'"),
        (lambda: Privacy(token_key=b"short"), r"Privacy\(token_key=\.\.\.\) must be at least 16"),
    ],
)
def test_a_wrong_setting_fails_where_it_is_made_with_its_name(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


def test_settings_are_frozen_values_that_are_safe_to_share() -> None:
    deadlines = Deadlines(tool_seconds=6.0)
    with pytest.raises(AttributeError):
        deadlines.tool_seconds = 1.0  # type: ignore[misc]
    first = VoiceHooks(secret=SECRET, deadlines=deadlines)
    second = VoiceHooks(secret=SECRET, deadlines=deadlines, platform=Platform())
    assert first.deadlines is second.deadlines
