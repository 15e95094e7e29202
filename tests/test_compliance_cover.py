"""The cover of shortfalls by higher tiers and version-independent licenses is the best the
pool allows: for any pool and usage, what stays short is what a maximum flow from the
shortfalls to the spare licenses leaves short (computed here on its own, plainly)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from satellite.domain.compliance import PoolLine, positions_for_virtual_account
from satellite.resources import config_dir
from satellite.wiring import load_catalog
from satellite_protocol.catalog import Catalog

CATALOG: Catalog = load_catalog(config_dir() / "catalog.toml")
TAGS = [e.tag for e in CATALOG if not e.export_restricted]
TODAY = dt.date(2026, 12, 1)


def line(tag: str, quantity: int) -> PoolLine:
    entry = CATALOG.get(tag)
    assert entry is not None
    term = entry.license_type is not None  # the version-independent ones: a subscription
    return PoolLine(
        id=1,
        virtual_account="Voice",
        tag=tag,
        quantity=quantity,
        license_type=entry.license_type or "PERPETUAL",
        start_date=TODAY if term else None,
        end_date=TODAY + dt.timedelta(days=364) if term else None,
        subscription_id=None,
        export_restricted=False,
        source="local",
    )


def least_short(pool: dict[str, int], in_use: dict[str, int]) -> int:
    """Edmonds-Karp from each tag's shortfall to each tag's spare, along substitutes."""
    own = {t: pool.get(t, 0) - in_use.get(t, 0) for t in TAGS}
    capacity: dict[tuple[str, str], int] = {}

    def edge(a: str, b: str, c: int) -> None:
        capacity[(a, b)] = capacity.get((a, b), 0) + c
        capacity.setdefault((b, a), 0)

    for tag, left in own.items():
        if left < 0:
            edge("source", f"short:{tag}", -left)
            for lender in CATALOG.substitutes(tag):
                if own.get(lender, 0) > 0:
                    edge(f"short:{tag}", f"spare:{lender}", 10**9)
        elif left > 0:
            edge(f"spare:{tag}", "sink", left)
    flow = 0
    while True:
        came_from: dict[str, str] = {"source": ""}
        queue = ["source"]
        for node in queue:
            for (a, b), c in capacity.items():
                if a == node and c > 0 and b not in came_from:
                    came_from[b] = a
                    queue.append(b)
        if "sink" not in came_from:
            break
        path, node = [], "sink"
        while node != "source":
            path.append((came_from[node], node))
            node = came_from[node]
        pushed = min(capacity[e] for e in path)
        for a, b in path:
            capacity[(a, b)] -= pushed
            capacity[(b, a)] += pushed
        flow += pushed
    return sum(-left for left in own.values() if left < 0) - flow


counts = st.dictionaries(st.sampled_from(TAGS), st.integers(1, 8), max_size=6)


@settings(max_examples=300, deadline=None)
@given(pool=counts, in_use=counts)
def test_what_stays_short_is_the_least_the_pool_allows(
    pool: dict[str, int], in_use: dict[str, int]
) -> None:
    got = positions_for_virtual_account(
        "Voice", CATALOG, [line(t, q) for t, q in pool.items()], TODAY, in_use=in_use
    )
    by_tag = {p.tag: p for p in got}
    for position in got:
        for lender, quantity in position.borrowed.items():
            assert lender in CATALOG.substitutes(position.tag)
            assert by_tag[lender].lent[position.tag] == quantity > 0
        if position.lent:
            assert position.available >= 0  # a tag lends only what it has to spare
    assert sum(max(0, -p.available) for p in got) == least_short(pool, in_use)
