"""A griffe extension for the API reference: instance attributes without their plumbing.

The reference shows undocumented members (``show_if_no_docstring``): the fields of the event
Structs and of the observer records have no docstrings and are exactly what a reader looks
up. Two things griffe would show with them say nothing to a reader, so they are left out:
the value of an attribute assigned in ``__init__`` (``self.path = path``, or a constructor
call spread over ten lines) and ``__slots__``.
"""

from __future__ import annotations

from typing import Any

import griffe


class InstanceAttributesWithoutValues(griffe.Extension):
    """Drop ``__slots__`` and the values of attributes assigned only in ``__init__``."""

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        cls.members.pop("__slots__", None)
        for member in cls.members.values():
            if isinstance(member, griffe.Attribute) and member.labels == {"instance-attribute"}:
                member.value = None
