"""Whether a run's worker is alive: an exclusive lock the worker holds for its whole life.

The worker takes ``flock(LOCK_EX)`` on ``<run folder>/worker.lock`` before it marks the run ``running`` and
keeps it until it returns. The operating system drops the lock when the process ends in any way (return,
exception, SIGKILL, crash), so "running" means "the lock is held", never "a process with the recorded PID
exists": a PID reused by another process after a crash cannot make a dead run look alive.

``flock`` locks belong to an open file description, so a lock taken by a worker thread conflicts with a
probe from another thread of the same process too, and the lock is not passed to child processes (the file
is opened close-on-exec and the project starts its helpers with ``subprocess``).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import RunError

LOCK_NAME = "worker.lock"
# A probe holds the lock for microseconds; a starting worker retries for this long before it concludes
# that another worker holds it.
_ACQUIRE_WAIT_S = 2.0


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of the run stored in ``folder``."""
    return Path(folder) / LOCK_NAME


def _try_lock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_held(folder: str | os.PathLike) -> bool:
    """True while a worker holds the run's lock (cheap: one open and one non-blocking ``flock``)."""
    path = lock_path(folder)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # no worker ever started, or the folder is gone
    except OSError as exc:
        raise RunError(f"{path}: cannot read the run's lock file ({exc.strerror})") from None
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


@contextmanager
def hold(folder: str | os.PathLike, *, what: str = "run") -> Iterator[None]:
    """Hold the run's lock for the duration of the block (the worker's life, or a deletion).

    Raises
    ------
    RunError
        Another process holds it (a worker is running this run).
    """
    path = lock_path(folder)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise RunError(f"{what}: cannot open its lock file {path} ({exc.strerror})") from None
    try:
        deadline = time.monotonic() + _ACQUIRE_WAIT_S
        while not _try_lock(fd, fcntl.LOCK_EX):
            if time.monotonic() > deadline:
                raise RunError(f"{what} is already running (its worker holds the lock {path})")
            time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock
