"""satellite: an on-prem Smart Software Licensing server."""

__version__ = "0.1.0"
