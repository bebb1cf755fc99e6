"""The one file lock: exclusive, non-blocking, held by an open file and gone with the process.

``fcntl.flock`` on POSIX; on Windows ``msvcrt.locking`` on the file's first byte (it locks from the
file's current position, so the position is set to 0 first). Both locks belong to the open file, so a
second open of the same file is refused even in the same process, and the kernel drops the lock when
the process dies: a lock left behind never needs cleaning up. A leaf: imports nothing of ours.
"""

from __future__ import annotations

import sys
from typing import IO

if sys.platform == "win32":  # pragma: no cover - Windows (and tests/unit/test_lock_windows.py)
    import msvcrt

    def try_lock(handle: IO[str]) -> bool:
        """Take the lock; False when another open file holds it."""
        handle.seek(0)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def unlock(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def try_lock(handle: IO[str]) -> bool:
        """Take the lock; False when another open file holds it."""
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def unlock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
