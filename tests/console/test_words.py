"""The console's words for the operations' values (``satellite/console/words.py``): every
value of each Literal the API declares has its words in both catalogs, so a new state added
to the API cannot show English on a Chinese page (nor a 500); and no template keeps a word
map or a fallback of its own."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

import satellite.console
from satellite.api.activity import AlertOut
from satellite.api.exports import ExportKeyOut
from satellite.api.licenses import LicenseOut, PoolLineOut
from satellite.api.principals import PrincipalOut
from satellite.api.products import DeviceOut, ReservationOut, ReservedLicenseOut
from satellite.api.reservations import ReservedProductOut
from satellite.api.sync import SyncHistoryOut, SyncStatusOut
from satellite.api.tokens import TokenInfo
from satellite.api.upstream import SatelliteTokenOut
from satellite.console import i18n, words
from tests.helpers.console import catalog

pytestmark = pytest.mark.unit

TEMPLATES = Path(satellite.console.__file__).parent / "templates"

# The answers' fields the pages say in words, and the kind of words for each.
API_FIELDS: list[tuple[type, str, str]] = [
    (DeviceOut, "status", "product_state"),
    (ReservedProductOut, "status", "product_state"),
    (DeviceOut, "authorization_status", "authorization"),
    (ReservationOut, "status", "reservation_state"),
    (LicenseOut, "status", "compliance"),
    (ExportKeyOut, "status", "export_key_state"),
    (ExportKeyOut, "end_reason", "export_key_end_reason"),
    (PoolLineOut, "license_type", "license_type"),
    (ReservedLicenseOut, "license_type", "license_type"),
    (PoolLineOut, "status", "line_status"),
    (PoolLineOut, "source", "line_source"),
    (TokenInfo, "status", "token_state"),
    (SatelliteTokenOut, "status", "token_state"),
    (TokenInfo, "export_controlled", "export_flag"),
    (AlertOut, "severity", "severity"),
    (PrincipalOut, "role", "role"),
    (SyncStatusOut, "mode", "sync_mode"),
    (SyncHistoryOut, "mode", "sync_mode"),
    (SyncHistoryOut, "operation", "sync_operation"),
    (SyncHistoryOut, "outcome", "sync_outcome"),
]


def _without_none(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        (only,) = [arg for arg in get_args(hint) if arg is not type(None)]
        return only
    return hint


@pytest.mark.parametrize(("answer", "field", "kind"), API_FIELDS)
def test_the_words_are_those_of_the_literal_the_api_answers_with(
    answer: type, field: str, kind: str
) -> None:
    declared = _without_none(get_type_hints(answer)[field])
    assert get_args(declared), f"{answer.__name__}.{field} is not a Literal"
    assert set(get_args(declared)) == set(words.values(kind))


@pytest.mark.parametrize("kind", sorted(words.KINDS))
def test_every_value_of_each_literal_has_its_words_in_both_catalogs(kind: str) -> None:
    english, chinese = catalog(i18n.ENGLISH), catalog(i18n.CHINESE)
    table, _ = words.KINDS[kind]
    assert set(table(i18n.ENGLISH)) == set(words.values(kind))  # each value, nothing else
    for value in words.values(kind):
        said = words.say(i18n.ENGLISH, kind, value)
        assert english.get(said) == said, (kind, value)
        assert words.say(i18n.CHINESE, kind, value) == chinese[said] != said, (kind, value)


def test_a_value_outside_the_literal_is_an_error_except_what_a_satellite_reported() -> None:
    with pytest.raises(KeyError):
        words.say(i18n.CHINESE, "product_state", "Hibernating")
    # Another satellite's version may have states this one does not: said as such.
    other = words.say(i18n.CHINESE, "reported_product_state", "hibernating")
    assert other.startswith("其他状态")
    assert "hibernating" in other


def test_no_template_keeps_a_word_map_or_a_fallback_of_its_own() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"{%-?\s*set\s+\w+\s*=\s*{", text), template.name
        assert not re.search(r"\.get\(\s*([\w.]+)\s*,\s*\1\s*\)", text), template.name


def test_every_kind_a_template_asks_for_is_one() -> None:
    asked = set()
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        asked |= {m for m in re.findall(r"words\.(\w+)\(", text) if m != "choices"}
        asked |= set(re.findall(r'words\.choices\("(\w+)"\)', text))
    assert asked
    assert asked <= set(words.KINDS), asked - set(words.KINDS)
