"""Where things are, for tests at any depth under ``tests/``."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root: where ``voicehooks/``, ``examples/`` and ``pyproject.toml`` are."""

FIXTURES = ROOT / "tests" / "fixtures"
"""Copies of the spec's example payloads (shared/spec/fixtures), so a clone tests on its own."""
