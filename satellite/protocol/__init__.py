"""Wire messages shared by the daemon and the agent (msgspec only: no server parts)."""
