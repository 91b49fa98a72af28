"""Peak memory of a process as the kernel counts it, for the benchmarks' tables.

Why not ``getrusage``/``wait4``'s ``ru_maxrss``: Linux carries that value over from the
process that started this one (a 13 MB child of a 500 MB Python reads 513 MB), so a
benchmark's children would read as large as the benchmark. ``VmHWM`` is the high-water
mark of the process's own memory.
"""

from __future__ import annotations

from pathlib import Path


def high_water_mb(pid: int | str = "self") -> float:
    """``VmHWM`` of a running process (``"self"`` by default) in MB; 0 once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return 0.0
