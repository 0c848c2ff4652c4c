"""What a worker watches of its own process: the health file a probe reads, and the
resident memory that recycling compares with ``max_rss_mb``."""

from __future__ import annotations

import os
from pathlib import Path


def touch_health_file(path: Path) -> None:
    """Mark the loop alive; the folder may be new (a pod's /tmp is an empty emptyDir)."""
    try:
        path.touch()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def resident_memory_mb() -> float:
    """Current resident set size, from /proc where there is one."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
