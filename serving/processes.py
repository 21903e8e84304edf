"""Process-group helpers shared by the local servers and their tests (Linux ``/proc``).

A server started with ``start_new_session=True`` leads a process group that holds its pre-forked
workers too; stopping the GROUP, not just the leader, is what guarantees no worker outlives it.
Waits poll for a condition with a deadline; nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

STOP_GRACE = 30.0  # seconds a group gets to exit on SIGTERM before SIGKILL
GONE_DEADLINE = 60.0  # seconds for killed processes to disappear from /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    """Live direct children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                found.append(int(entry.name))
    return sorted(found)


def wait_until(condition: Callable[[], bool], deadline: float, what: str) -> None:
    """Poll ``condition`` every 50 ms until it holds; TimeoutError naming ``what`` after
    ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not within {deadline:g} s")
        time.sleep(0.05)


def stop_process_group(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGTERM the group led by ``process``, SIGKILL what is left after ``STOP_GRACE`` s, and
    return once no member of the group is alive. Idempotent."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_GRACE)
    with contextlib.suppress(ProcessLookupError):  # workers of a leader that is already gone
        os.killpg(pgid, signal.SIGKILL)
    process.wait()
    wait_until(lambda: not group_members(pgid), GONE_DEADLINE, f"process group {pgid} gone")


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and all its live descendants (Linux /proc); 0 when unreadable."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total
