"""Pure models and rules: no I/O, no framework imports."""
