"""The reloader of ``voicehooks dev``: idle beside a virtualenv, and still reloading on an edit."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from uvicorn.config import Config

from tests.helpers.paths import ROOT
from tests.helpers.servers import running_server
from voicehooks.cli.reloading import ProjectReload, project_files

SECRET = "whsec_cli_reloading"


def make_project(directory: Path, venv_files: int) -> Path:
    """The tutorial's layout: the app, a package of its own, and a ``.venv`` full of modules."""
    app = directory / "app.py"
    app.write_text((ROOT / "examples" / "quickstart.py").read_text())
    (directory / "mine").mkdir()
    (directory / "mine" / "helpers.py").write_text("X = 1\n")
    site = directory / ".venv" / "lib" / "python3.11" / "site-packages"
    (directory / ".venv" / "pyvenv.cfg").parent.mkdir(parents=True)
    (directory / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for number in range(venv_files):
        package = site / f"package{number // 50}"
        package.mkdir(parents=True, exist_ok=True)
        (package / f"module{number}.py").write_text("VALUE = 1\n")
    return app


def test_only_the_project_s_own_files_are_watched(tmp_path: Path) -> None:
    make_project(tmp_path, venv_files=10)
    for skipped in ("venv", "node_modules", "__pycache__", ".git", "site-packages"):
        (tmp_path / skipped).mkdir(exist_ok=True)
        (tmp_path / skipped / "x.py").write_text("")
    (tmp_path / "env-by-another-name").mkdir()
    (tmp_path / "env-by-another-name" / "pyvenv.cfg").write_text("")
    (tmp_path / "env-by-another-name" / "y.py").write_text("")
    watched = {os.path.relpath(path, tmp_path) for path in project_files(str(tmp_path))}
    assert watched == {"app.py", os.path.join("mine", "helpers.py")}


def test_an_edit_a_new_file_and_a_deletion_restart_a_venv_change_does_not(
    tmp_path: Path,
) -> None:
    app = make_project(tmp_path, venv_files=3)
    config = Config("app:app", reload=True, reload_delay=0.001, log_config=None)
    reloader = ProjectReload(config, lambda sockets: None, [], str(tmp_path))
    assert reloader.should_restart() is None
    module = next((tmp_path / ".venv").rglob("*.py"))
    module.write_text("VALUE = 2\n")
    os.utime(module, (time.time() + 5, time.time() + 5))
    assert reloader.should_restart() is None
    os.utime(app, (time.time() + 5, time.time() + 5))
    assert reloader.should_restart() == [app]
    assert reloader.should_restart() is None
    (tmp_path / "mine" / "new.py").write_text("")
    assert reloader.should_restart() == [tmp_path / "mine" / "new.py"]
    (tmp_path / "mine" / "helpers.py").unlink()
    assert reloader.should_restart() == [tmp_path / "mine" / "helpers.py"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` and every process beneath it, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # it ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        pending.extend(int(child) for child in children)
    return total


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from /proc")
def test_an_idle_dev_server_beside_a_venv_uses_under_2_percent_of_a_core(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    app = make_project(project, venv_files=1500)
    # As the default install runs: without watchfiles, which uvicorn's reloader would use.
    hidden = tmp_path / "without-watchfiles" / "watchfiles"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('not installed')\n")
    path = os.pathsep.join(filter(None, [str(hidden.parent), os.environ.get("PYTHONPATH")]))
    env = {"VOICEHOOKS_SECRET": SECRET, "PYTHONPATH": path}
    with running_server("app.py", tmp_path, env=env, command="dev", cwd=project) as server:
        deadline = time.monotonic() + 20
        while "Application startup complete" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        time.sleep(1.0)  # past the imports
        pid = server.process.pid
        before, started = cpu_seconds(pid), time.monotonic()
        time.sleep(5.0)
        share = (cpu_seconds(pid) - before) / (time.monotonic() - started)
        assert share < 0.02, f"idle dev used {share:.1%} of a core"

        app.write_text(app.read_text().replace("waiting for parts", "ready Friday"))
        deadline = time.monotonic() + 20
        while server.log().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
