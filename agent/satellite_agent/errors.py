"""What the agent raises: each one a line for the operator, no traceback."""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """Something the operator must read: one line, no traceback."""


class ServerUnreachable(AgentError):
    """The server (or the proxy) could not be reached."""


class RequestRefused(AgentError):
    """The server refused the request; the message says why."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(f"the server refused the request ({status}): {detail}")
