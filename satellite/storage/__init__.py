"""PostgreSQL access: the pool, migrations, the embedded server and the repositories.

Only this package imports asyncpg. Driver errors are translated into domain errors here.
"""
