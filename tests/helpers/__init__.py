"""Factories and helpers the test modules share; no test module imports another, and
fixtures stay in conftest.py files.

- ``api``: accounts, pools, tokens, agents and SLR products through the admin API; the
  refusal checks of hostile input.
- ``accounts``, ``auth``, ``devices``, ``licenses``, ``reservation``, ``export``, ``jobs``:
  what the tests of one resource (or of the scheduled jobs) share.
- ``events``: the audit log seen from the database.
- ``isolation``: the table of account-scoped routes and the two tenants driven through it.
- ``cli``: the ``satellite`` command in process (or as the console script where the process
  is the point), ``satellite-agent`` in a subprocess, configuration files, direct queries.
- ``daemon``: the real daemon in a subprocess.
- ``sync``: an upstream beside the satellite, and the steps the sync tests take at each end.
"""
