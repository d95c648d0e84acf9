"""The health probes against real servers: ``voicehooks run``, a mounted app, and a worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.paths import ROOT
from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import free_port, running_server, wait_until_listening
from voicehooks.core.environment import QUEUE_URL

pytestmark = pytest.mark.slow

SECRET = "whsec_health_tests"


def probe(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_voicehooks_run_answers_the_probes_and_logs_no_warning_for_them(tmp_path: Path) -> None:
    env = {"VOICEHOOKS_SECRET": SECRET}
    with running_server("examples/quickstart.py", tmp_path, env=env) as server:
        assert probe(server.url + "/healthz") == (200, b'{"status":"live"}')
        assert probe(server.url + "/healthz/ready") == (200, b'{"status":"ready"}')
        for _ in range(3):  # a load balancer's default probe: GET on the webhook path
            assert probe(server.url + "/")[0] == 405
    log = server.log()
    assert "healthz" not in log
    assert "rejected 405" not in log


def test_a_worker_serves_the_probes_on_its_health_port(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VOICEHOOKS_SECRET": SECRET,
        QUEUE_URL: redis_server.url,
        "VOICEHOOKS_WORKER_HEALTH_PORT": str(port),  # the option's variable
        "VOICEHOOKS_METRICS": "1",  # --metrics, on the same port
        "DURABLE_EFFECTS_DIR": str(tmp_path),
    }
    log = tmp_path / "worker.log"
    with open(log, "w") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "voicehooks", "worker", "tests/apps/durable.py"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            text=True,
        )
    try:
        wait_until_listening(port, worker)
        url = f"http://127.0.0.1:{port}/healthz"
        assert probe(url) == (200, b'{"status":"live"}')
        assert probe(url + "/ready") == (200, b'{"status":"ready"}')
        status, body = probe(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }
        assert samples[("voicehooks_worker_jobs_total", (("outcome", "done"),))] == 0
        assert samples[("voicehooks_worker_takeovers_total", ())] == 0
        assert samples[("voicehooks_worker_backlog", ())] == 0
        redis_server.stop()
        deadline = time.monotonic() + 10  # the readiness answer is kept a second
        while probe(url + "/ready")[0] != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert probe(url + "/ready") == (503, b'{"status":"not ready"}')
        assert probe(url)[0] == 200
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    text = log.read_text()
    assert f"serving /healthz, /healthz/ready, /metrics on http://127.0.0.1:{port}" in text
    assert "SIGTERM; reading no more" in text
    assert "stopped; 0 done, 0 failed, 0 retried, 0 dead, 0 taken over" in text
