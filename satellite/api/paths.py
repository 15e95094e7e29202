"""Path templates the operations share; ``{name}`` segments are request fields."""

from __future__ import annotations

ACCOUNT = "/accounts/{account}"
VA = ACCOUNT + "/virtual-accounts/{va}"
