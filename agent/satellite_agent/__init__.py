"""The product side: a library (``Agent``) and the ``satellite-agent`` command."""
