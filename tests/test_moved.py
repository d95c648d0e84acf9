"""voicehooks._moved: every import path 0.1.0 published still works, with a warning naming the
new home, for one release."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import voicehooks

# What 0.1.0 (CHANGELOG's [0.1.0], commit 1975e59) published: module -> its __all__. Names
# removed before 0.2 shipped anything are listed apart below.
PUBLISHED_0_1_0 = {
    "app": ["VoiceHooks", "resolve_secrets"],
    "background": ["BackgroundRunner", "Job"],
    "context": ["CallContext", "Injection", "fill", "plan_injections"],
    "dedupe": ["Deduplicator", "StoreFailure", "event_key", "tool_key"],
    "dispatch": ["Dispatcher"],
    "events": ["AssistantRequest", "Call", "CallStatus", "EndOfCallReport", "Event", "ToolCall"],
    "exceptions": ["ConfigurationError", "PayloadError", "StoreError", "ToolError"],
    "logs": ["describe"],
    "responses": ["AssistantResponse", "ToolResult", "error_result", "normalize_result"],
    "routing": ["ErrorHook", "Handler", "Registry", "Route"],
    "running": ["is_async_callable", "run_concurrently"],
    "signing": ["DEFAULT_TOLERANCE_SECONDS", "Verifier", "is_milliseconds", "sign", "signature"],
    "stores": ["DeliveryStore", "MemoryStore", "REDIS_URL_ENV", "RedisStore", "default_store"],
    "tools": ["ArgumentError", "Tool", "ToolOptions", "parse_docstring"],
}
# Still public, at the same path: no warning.
UNCHANGED = {"app", "events", "exceptions"}
# Gone while 0.2 was built, before any of it shipped (CHANGELOG says so).
REMOVED_BEFORE_0_2 = {("running", "call_function"), ("running", "call_with_deadline")}

ROOT_0_1_0 = [
    "AssistantRequest",
    "AssistantResponse",
    "CallContext",
    "CallStatus",
    "ConfigurationError",
    "DeliveryStore",
    "EndOfCallReport",
    "Event",
    "MemoryStore",
    "RedisStore",
    "StatusUpdate",
    "StoreError",
    "ToolCall",
    "ToolCalls",
    "ToolError",
    "ToolResult",
    "VoiceHooks",
    "VoiceHooksError",
    "__version__",
    "normalize_result",
    "results_from_response",
    "sign",
]


@pytest.mark.parametrize(
    ("module", "name"),
    [(module, name) for module, names in PUBLISHED_0_1_0.items() for name in names],
)
def test_every_0_1_0_name_still_imports_from_its_0_1_0_module(module: str, name: str) -> None:
    old = importlib.import_module(f"voicehooks.{module}")
    if module in UNCHANGED:
        assert getattr(old, name) is not None
        return
    with pytest.warns(DeprecationWarning, match=rf"voicehooks\.{module}.*use `from "):
        assert getattr(old, name) is not None


@pytest.mark.parametrize("name", ROOT_0_1_0)
def test_every_0_1_0_root_name_still_imports(name: str) -> None:
    if name in voicehooks.__all__:
        assert getattr(voicehooks, name) is not None
        return
    with pytest.warns(DeprecationWarning, match=rf"voicehooks\.{name} moved"):
        assert getattr(voicehooks, name) is not None


def test_a_moved_name_is_the_very_object_of_its_new_home() -> None:
    from voicehooks.pipeline.dispatch import Dispatcher
    from voicehooks.state.stores import RedisStore

    old_dispatch = importlib.import_module("voicehooks.dispatch")
    old_stores = importlib.import_module("voicehooks.stores")
    with pytest.warns(DeprecationWarning, match=r"use `from voicehooks\.pipeline\.dispatch"):
        assert old_dispatch.Dispatcher is Dispatcher
    with pytest.warns(DeprecationWarning, match=r"use `from voicehooks import RedisStore`"):
        assert old_stores.RedisStore is RedisStore


def test_a_name_that_never_was_is_an_attribute_error() -> None:
    old_dispatch = importlib.import_module("voicehooks.dispatch")
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        old_dispatch.Nothing  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        getattr(voicehooks, "Nothing")  # noqa: B009


def test_the_old_paths_import_in_a_fresh_interpreter_with_a_warning() -> None:
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "try:\n    from voicehooks.stores import RedisStore\nexcept DeprecationWarning as w:\n"
        "    print('warned:', w)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "warned: voicehooks.stores moved" in out
    assert "from voicehooks import RedisStore" in out


@pytest.mark.parametrize(("module", "name"), sorted(REMOVED_BEFORE_0_2))
def test_names_removed_before_0_2_shipped_say_so_as_an_attribute_error(
    module: str, name: str
) -> None:
    with pytest.raises(AttributeError, match=f"has no attribute '{name}'"):
        getattr(importlib.import_module(f"voicehooks.{module}"), name)
