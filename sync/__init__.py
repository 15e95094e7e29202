"""Sync with the upstream authority: connected mode on a schedule, disconnected mode by files.

``bundle`` is the signed file format of registration requests and answers, sync requests
and sync answers; ``spool`` keeps bundles in transit, ``transport`` carries them over HTTP;
``satellite`` is the satellite's side, ``upstream`` the upstream's (docs/sync.md). A
layer between the operations (``satellite.api``) and the services: it uses services,
storage, crypto, domain and protocol, and nothing below imports it.
"""
