"""Die with the parent: a process started to serve another one must not outlive it (no orphan workers).

On Linux the kernel does it (prctl PR_SET_PDEATHSIG: SIGKILL when the parent dies, even by SIGKILL);
elsewhere a daemon thread watches the parent id and exits when it changes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading

log = logging.getLogger("fitexplain.worker")

PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 1.0


def die_with_parent(parent_pid: int | None = None) -> None:
    """Arrange for this process to be killed when its parent (`parent_pid`, default the current one)
    dies; exits at once if that parent is already gone (it may die before we ask)."""
    expected = os.getppid() if parent_pid is None else parent_pid
    if not _kernel_pdeathsig():
        threading.Thread(target=_watch_parent, args=(expected,), name="lifeline", daemon=True).start()
    if os.getppid() != expected:
        os._exit(1)


def _kernel_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)  # the C library already loaded (find_library would fork)
    failed: int = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return failed == 0


def _watch_parent(expected: int) -> None:
    while os.getppid() == expected:
        threading.Event().wait(WATCH_SECONDS)
    log.warning("parent %d is gone: exiting", expected)
    os._exit(1)
