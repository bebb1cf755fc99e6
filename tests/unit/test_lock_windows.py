"""The file lock's Windows branch (``core.filelock`` with msvcrt), run on Linux against an msvcrt that
really locks, under both of its users: the tunnel's ProfileLock and the setup lock.

Why this is not a mock that proves nothing: the stand-in does what ``msvcrt.locking`` does, a
non-blocking exclusive lock on ``nbytes`` from the file's current position that belongs to the open
file (not to the process), failing with OSError. Linux has the same kind of lock: an open file
description lock (F_OFD_SETLK). So a second handle in the same process is really refused, as on
Windows; a plain fcntl/flock stand-in would have let it through. ``core.filelock`` is loaded as a
separate copy with ``sys.platform == "win32"`` and put in place of the real one where the two locks
look it up, so the real module is untouched.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import wa_onboard.core.filelock as real_filelock
from wa_onboard.core.setup import run as setup_run
from wa_onboard.core.tunnel import state as tunnelstate

fcntl: Any = pytest.importorskip("fcntl")
if not hasattr(fcntl, "F_OFD_SETLK"):  # pragma: no cover
    pytest.skip("needs Linux open file description locks", allow_module_level=True)

LK_UNLCK, LK_LOCK, LK_NBLCK = 0, 1, 2  # msvcrt's values


class RealLockingMsvcrt(types.ModuleType):
    """``msvcrt.locking`` on an OFD byte-range lock, with every call recorded as (position, mode, nbytes)."""

    LK_UNLCK, LK_LOCK, LK_NBLCK = LK_UNLCK, LK_LOCK, LK_NBLCK

    def __init__(self) -> None:
        super().__init__("msvcrt")
        self.calls: list[tuple[int, int, int]] = []

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        position = os.lseek(fd, 0, os.SEEK_CUR)
        self.calls.append((position, mode, nbytes))
        kind = {LK_NBLCK: fcntl.F_WRLCK, LK_UNLCK: fcntl.F_UNLCK}[mode]
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks); from the position, like msvcrt
        request = struct.pack("hhqqi4x", kind, os.SEEK_SET, position, nbytes, 0)
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, request)  # OSError (EAGAIN) when another handle holds it


@pytest.fixture
def msvcrt(monkeypatch: pytest.MonkeyPatch) -> RealLockingMsvcrt:
    """A copy of core.filelock loaded as Windows would load it, with our msvcrt, used by both locks."""
    fake = RealLockingMsvcrt()
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    spec = importlib.util.spec_from_file_location("filelock_win32", real_filelock.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "platform", "win32")
        spec.loader.exec_module(module)
    assert module.msvcrt is fake and "fcntl" not in vars(module)  # the Windows branch was taken
    monkeypatch.setattr(tunnelstate, "filelock", module)
    monkeypatch.setattr(setup_run, "filelock", module)
    return fake


def test_msvcrt_lock_is_one_byte_at_offset_0_and_refuses_a_second_handle(msvcrt: RealLockingMsvcrt) -> None:
    ts = tunnelstate
    lock = ts.ProfileLock("default")
    lock.acquire()
    assert msvcrt.calls == [(0, LK_NBLCK, 1)]
    assert lock.held

    with pytest.raises(ts.LockHeld):
        ts.ProfileLock("default").acquire()  # a second handle, same process: refused as on Windows
    assert ts.lock_is_held("default")

    lock.release()
    assert not lock.held
    assert msvcrt.calls[-1] == (0, LK_UNLCK, 1)
    assert not ts.lock_is_held("default")
    with ts.ProfileLock("default") as again:  # free again once released
        assert again.held
    # acquire; refused; lock_is_held's probe refused; its probe taken and let go; again and let go
    assert msvcrt.calls == [
        (0, m, 1) for m in (LK_NBLCK, LK_NBLCK, LK_NBLCK, LK_UNLCK, LK_NBLCK, LK_UNLCK, LK_NBLCK, LK_UNLCK)
    ]


def test_the_setup_lock_on_windows_refuses_a_second_setup(msvcrt: RealLockingMsvcrt) -> None:
    with setup_run.setup_lock("default"):
        with pytest.raises(setup_run.SetupBusy), setup_run.setup_lock("default"):
            pass
        with setup_run.setup_lock("other"):
            pass
    with setup_run.setup_lock("default"):
        pass
    assert msvcrt.calls[:2] == [(0, LK_NBLCK, 1), (0, LK_NBLCK, 1)]  # byte 0, whatever the file holds


def test_the_stand_in_really_excludes(tmp_path: Path) -> None:
    """The stand-in's lock holds against another open of the same file (else the test above proves nothing)."""
    msvcrt = RealLockingMsvcrt()
    path = tmp_path / "f"
    path.write_text("x")
    with path.open("r+") as one, path.open("r+") as two:
        msvcrt.locking(one.fileno(), LK_NBLCK, 1)
        with pytest.raises(OSError):
            msvcrt.locking(two.fileno(), LK_NBLCK, 1)
        two.seek(1)  # another byte is free: the lock is 1 byte long
        msvcrt.locking(two.fileno(), LK_NBLCK, 1)
        msvcrt.locking(one.fileno(), LK_UNLCK, 1)
        two.seek(0)
        msvcrt.locking(two.fileno(), LK_NBLCK, 1)
