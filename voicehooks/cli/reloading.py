"""The reloader of ``voicehooks dev`` (and ``run --reload``): it watches the project, not its venv.

uvicorn's own reloader, without the optional ``watchfiles``, stats every ``*.py`` file beneath
the app's directory four times a second and ignores ``--reload-exclude``. A ``.venv`` beside
the app (the layout the tutorial recommends) holds well over a thousand of them, which kept an
idle ``voicehooks dev`` at about a third of a core (issue 24). This one polls at uvicorn's
pace too, but walks only the project's own files: it does not descend into hidden
directories (``.venv``, ``.git``, tool caches), into any directory holding a ``pyvenv.cfg``
(a virtualenv by any name), nor into ``venv``, ``__pycache__``, ``node_modules`` or
``site-packages``.
So it needs no extra dependency, and it behaves the same whether ``watchfiles`` is installed
or not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from socket import socket
from typing import Final

from uvicorn.config import Config
from uvicorn.supervisors.basereload import BaseReload

__all__ = ["SKIPPED_DIRECTORIES", "ProjectReload", "project_files"]

SKIPPED_DIRECTORIES: Final = frozenset({"__pycache__", "node_modules", "site-packages", "venv"})
"""Directory names never watched, besides hidden ones and virtualenvs under any name."""


def project_files(directory: str) -> Iterator[str]:
    """The ``*.py`` files beneath ``directory``, minus virtualenvs, caches and hidden trees."""
    for root, directories, files in os.walk(directory):
        directories[:] = [
            name
            for name in directories
            if not name.startswith(".")
            and name not in SKIPPED_DIRECTORIES
            and not os.path.exists(os.path.join(root, name, "pyvenv.cfg"))
        ]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(root, name)


class ProjectReload(BaseReload):
    """Restart the server process when a file of ``project_files(directory)`` changes.

    A changed, added or deleted file counts. The first picture is taken here, before the
    server starts, so an edit made while it imports the app is not missed.
    """

    def __init__(
        self,
        config: Config,
        target: Callable[[list[socket] | None], None],
        sockets: list[socket],
        directory: str,
    ) -> None:
        super().__init__(config, target, sockets)
        self.reloader_name = "the project's .py files (not virtualenvs or caches)"
        self.directory = directory
        self.mtimes = self._picture()

    def _picture(self) -> dict[str, float]:
        mtimes = {}
        for path in project_files(self.directory):
            try:
                mtimes[path] = os.stat(path).st_mtime
            except OSError:  # deleted between the walk and the stat
                continue
        return mtimes

    def should_restart(self) -> list[Path] | None:
        """The files changed since the last look, after uvicorn's pause; ``None`` if none."""
        self.pause()
        now = self._picture()
        changed = [
            Path(path)
            for path in now.keys() | self.mtimes.keys()
            if now.get(path) != self.mtimes.get(path)
        ]
        self.mtimes = now
        return sorted(changed) or None
