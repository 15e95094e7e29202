"""The real daemon with the metrics on a listener of their own: plain HTTP on loopback,
nothing else there, and the main listener has no /metrics."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.daemon import (
    POLL,
    START_TIMEOUT,
    Daemon,
    base_env,
    free_port,
    http,
    kill_daemon,
    start,
)

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _scrape(url: str) -> dict[str, float]:
    with _opener.open(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_daemon_serves_the_metrics_on_their_own_loopback_listener(
    tmp_path: Path, db_dsn: str, state_dir: Path
) -> None:
    port = free_port(socket.AF_INET, "127.0.0.1")
    metrics_port = free_port(socket.AF_INET, "127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "satellite.toml"
    config.write_text(
        f'listen = ["127.0.0.1:{port}"]\n[database]\ndsn = {json.dumps(db_dsn)}\n'
        f'[metrics]\nserve = "own-listener"\nlisten = "127.0.0.1:{metrics_port}"\n',
        "utf-8",
    )
    args = ["--config", str(config), "serve", "--state-dir", str(state_dir), "--plain-http"]
    daemon: Daemon | None = None
    try:
        daemon = start(args, tmp_path / "logs", base_env(tmp_path))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert daemon.proc.poll() is None, daemon.err
            with contextlib.suppress(OSError):
                if http("GET", f"{base}/healthz")[0] == 200:
                    break
            assert time.monotonic() < deadline, daemon.err
            time.sleep(POLL)
        assert http("GET", f"{base}/metrics")[0] == 404
        seen = _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert seen["satellite_database_up{}"] == 1
        healthz = {"method": "GET", "route": "/healthz", "status": "200"}
        assert seen["satellite_http_requests_total" + json.dumps(healthz, sort_keys=True)] >= 1
        assert "metrics.listening" in daemon.err
        assert daemon.stop() == 0, daemon.err
    finally:
        kill_daemon(daemon)
