"""For the metrics' tests: settings that serve /metrics, a scrape over real HTTP parsed with
prometheus-client's own parser, and a sample looked up by name and labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from satellite.config import MetricsSettings, Settings
from tests.conftest import Api

TOKEN = "metrics-token-0123456789"


def with_metrics(
    settings: Settings, tmp_path: Path, token: str = TOKEN, **changes: Any
) -> Settings:
    """``settings`` serving /metrics on the main listener behind ``token`` (in a file);
    ``changes``: other metrics settings."""
    token_file = tmp_path / "metrics-token"
    token_file.write_text(token + "\n", encoding="utf-8")
    metrics = MetricsSettings(serve="main-listener", bearer_token_file=str(token_file), **changes)
    return msgspec.structs.replace(settings, metrics=metrics)


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[Sample] = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    @property
    def names(self) -> set[str]:
        return {sample.name for sample in self.samples}

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one sample ``name`` whose labels include ``labels`` (None: none)."""
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else None

    def labels(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


async def scrape(api: Api, token: str | None = TOKEN, path: str = "/metrics") -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with api.client.get(path, headers=headers) as response:
        text = await response.text()
        assert response.status == 200, text
        assert response.headers["Content-Type"].startswith("text/plain"), response.headers
    return Scrape(text)
