"""CPU seconds per process from /proc, for ``load.py``: the daemon with every process it
starts, the whole PostgreSQL server (postmaster and backends, live or ended), and this
load generator."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    # Fields after the command name: fields[0] is field 3 (state) of proc(5).
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _own_ticks(pid: int, ended_children_too: bool) -> int:
    fields = _stat(pid)
    # utime, stime, cutime, cstime are fields 14-17.
    ticks = int(fields[11]) + int(fields[12])
    if ended_children_too:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def _children(pid: int) -> list[int]:
    """Live children of every thread of ``pid`` (each thread lists those it started)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue  # the thread or process ended meanwhile
    return found


def _tree_ticks(pid: int, leave_out: int, depth: int = 0) -> int:
    """A process's CPU ticks with its ended children's and its live descendants' (a daemon
    with worker processes counts them all), except ``leave_out``'s tree."""
    try:
        ticks = _own_ticks(pid, ended_children_too=True)
    except (OSError, IndexError):
        return 0  # ended meanwhile (and counted in its parent's)
    if depth < 8:
        ticks += sum(_tree_ticks(c, leave_out, depth + 1) for c in _children(pid) if c != leave_out)
    return ticks


@dataclass(frozen=True)
class Cpu:
    """CPU seconds so far of the daemon (with any processes of its own), of the whole
    PostgreSQL server (the postmaster, its live processes and the ones that ended: a
    backend's time goes to the postmaster's children times when it exits) and of this
    load generator (the agents; not its child processes)."""

    daemon: float
    postgres: float
    agents: float

    @classmethod
    def now(cls, daemon: int, pgdata: Path) -> Cpu:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        server = _own_ticks(postmaster, ended_children_too=True)
        for pid in _children(postmaster):
            try:
                server += _own_ticks(pid, ended_children_too=False)
            except (OSError, IndexError):
                continue  # ended meanwhile (and counted in the postmaster's)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            _tree_ticks(daemon, leave_out=postmaster) / CLOCK_TICKS,
            server / CLOCK_TICKS,
            usage.ru_utime + usage.ru_stime,
        )

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(
            self.daemon - other.daemon, self.postgres - other.postgres, self.agents - other.agents
        )


def cpu_line(what: str, spent: Cpu, operations: int) -> str:
    per = 1000 / max(1, operations)
    return (
        f"  CPU per {what}: daemon {spent.daemon * per:.2f} ms, PostgreSQL "
        f"{spent.postgres * per:.2f} ms, daemon + PostgreSQL "
        f"{(spent.daemon + spent.postgres) * per:.2f} ms; load generator "
        f"{spent.agents * per:.2f} ms ({spent.daemon:.1f} s, {spent.postgres:.1f} s and "
        f"{spent.agents:.1f} s for {operations})"
    )
