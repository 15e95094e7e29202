"""Sync with the upstream authority: connected mode on a schedule, disconnected mode by files.

The bundle format, the client, the bundle files and the upstream's side of the protocol
live here (docs/design.md, "Protocols").
"""
