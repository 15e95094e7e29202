"""The addresses of the console's pages of an account and of a virtual account: the names
in them quoted, once, here."""

from __future__ import annotations

from urllib.parse import quote


def account_path(account: str, page: str = "") -> str:
    """``/accounts/{account}``, or one of its pages (``page`` is ours: not quoted)."""
    return f"/accounts/{quote(account, safe='')}" + (f"/{page}" if page else "")


def virtual_account_path(account: str, va: str, page: str = "") -> str:
    """``/accounts/{account}/virtual-accounts/{va}``, or one of its pages."""
    return account_path(account, f"virtual-accounts/{quote(va, safe='')}") + (
        f"/{page}" if page else ""
    )


def item_path(path: str, name: str) -> str:
    """One item (a product, a satellite) of the list at ``path``."""
    return f"{path}/{quote(name, safe='')}"
