"""The real daemon with the metrics on a listener of their own: plain HTTP on loopback,
nothing else there, and the main listener has no /metrics."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.daemon import (
    Daemon,
    base_env,
    free_port,
    http,
    kill_daemon,
    start,
    wait_serving,
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
        wait_serving(daemon, base)
        assert http("GET", f"{base}/metrics")[0] == 404
        seen = _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert seen["satellite_database_up{}"] == 1
        healthz = {"method": "GET", "route": "/healthz", "status": "200"}
        assert seen["satellite_http_requests_total" + json.dumps(healthz, sort_keys=True)] >= 1
        assert "metrics.listening" in daemon.err
        assert daemon.stop() == 0, daemon.err
    finally:
        kill_daemon(daemon)
