"""What the database server allows: the connections this role may open (the workers' pools
share them)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class ConnectionLimit:
    max_connections: int  # the server's setting
    allowed: int  # of those, what this role may open in this database


# Superusers may take every slot, and no CONNECTION LIMIT of a role or a database binds
# them; another role cannot take those reserved for superusers, nor (PostgreSQL 16 on,
# unless it has pg_use_reserved_connections) those of reserved_connections.
_LIMIT = """
SELECT current_setting('max_connections')::int AS max_connections,
       r.rolsuper AS superuser,
       r.rolconnlimit AS role_limit,
       d.datconnlimit AS database_limit,
       current_setting('superuser_reserved_connections')::int AS for_superusers,
       CASE WHEN current_setting('reserved_connections', true) IS NULL THEN 0
            WHEN pg_has_role(current_user, 'pg_use_reserved_connections', 'MEMBER') THEN 0
            ELSE current_setting('reserved_connections')::int END AS reserved
FROM pg_roles r, pg_database d
WHERE r.rolname = current_user AND d.datname = current_database()
"""


async def connection_limit(conn: asyncpg.Connection) -> ConnectionLimit:
    row = await conn.fetchrow(_LIMIT)
    assert row is not None  # (the role and the database of this very connection)
    total = int(row["max_connections"])
    if row["superuser"]:
        return ConnectionLimit(total, total)
    limits = [total - int(row["for_superusers"]) - int(row["reserved"])]
    limits += [int(row[name]) for name in ("role_limit", "database_limit") if row[name] >= 0]
    return ConnectionLimit(total, min(limits))
