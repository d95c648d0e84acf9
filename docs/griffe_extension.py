"""A griffe extension for the API reference: leave out undocumented instance attributes.

The reference shows undocumented members (``show_if_no_docstring``) because the fields of
the event Structs have no docstrings and are exactly what a reader looks up. An attribute
that is only assigned in ``__init__`` (``self.dispatcher = ...``) is the object's plumbing
instead, unless its author gave it a docstring: those are left out.
"""

from __future__ import annotations

from typing import Any

import griffe


class HideUndocumentedInstanceAttributes(griffe.Extension):
    """Drop every attribute labelled only ``instance-attribute`` that has no docstring."""

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        for name, member in list(cls.members.items()):
            if (
                isinstance(member, griffe.Attribute)
                and member.labels == {"instance-attribute"}
                and member.docstring is None
            ):
                del cls.members[name]
