"""``python -m satellite``: the ``satellite`` command (how a daemon starts its workers)."""

from satellite.cli import main

main()
