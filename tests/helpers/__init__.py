"""Factories and helpers the test modules share (fixtures stay in tests/conftest.py).

- ``tests.helpers.api``: accounts, pools, tokens, agents and SLR products through the admin API.
- ``tests.helpers.licenses``: the license pool, licenses view and alerts of account Acme.
- ``tests.helpers.cli``: the ``satellite`` command in process, ``satellite-agent`` in a
  subprocess, configuration files and direct queries.
- ``tests.helpers.daemon``: the real daemon in a subprocess.
- ``tests.helpers.sync``: an upstream beside the satellite, for sync tests.
"""
