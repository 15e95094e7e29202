"""SLR through the admin API: the confirm and return paths, a product instance's detail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.conftest import Api
from tests.helpers.api import VOICE

CONFIRM = VOICE + "/reservations/confirm"
RETURN = VOICE + "/reservations/return"
LONGEST = "LONGEST_TERM_FIRST"


def id_(day: dt.date) -> dt.date:
    return day


async def device(admin: Api, product_id: str) -> dict[str, Any]:
    status, body = await admin.get(f"{VOICE}/devices/{product_id}")
    assert status == 200, body
    return dict(body)
