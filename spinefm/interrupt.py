"""A clean stop on SIGINT or SIGTERM (Ctrl-C, `timeout`, SLURM pre-emption), and no process left behind.

Inside `stop_on_signals()` the first SIGINT or SIGTERM raises `Interrupted` in the main thread,
wherever it is: the batch in flight is dropped (outputs are written atomically, so none is partial),
and whoever has something to save catches it on the way up, saves, and raises it on; the entry point
exits with 128 + the signal's number. Later signals are ignored so that this clean-up finishes.

Every process the run starts dies with its parent, even one killed outright (SIGKILL): DataLoader
workers through `init_worker`, ranks started by a launcher (Lightning's DDP, torchrun) through
`stop_on_signals`. A worker forked while the handlers are installed leaves quietly on a signal: the
main process stops the run and shuts the workers down.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
RANKS_GRACE_S = 5.0  # how long a launcher waits for the ranks it stopped before it exits (they die with it)
_PR_SET_PDEATHSIG = 1

_owner: int | None = None  # the process whose handlers are installed
_received: int | None = None


class Interrupted(BaseException):
    """A stop signal arrived. A BaseException, so that no `except Exception` in a film's handling
    takes it for that film's failure; not a KeyboardInterrupt, which Lightning's Trainer turns into
    `sys.exit(1)`: any other exception it re-raises after its own clean-up (`on_exception` hooks)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def _handle(signum, frame) -> None:
    if os.getpid() != _owner:  # a worker forked before its `init_worker` ran
        _leave(signum, frame)
    global _received
    if _received is None:
        _received = signum
        raise Interrupted(signum)


def _leave(signum, frame) -> None:
    os._exit(0)


@contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM raise `Interrupted` inside the block (a signal the process was started
    to ignore, as a background job ignores SIGINT, stays ignored)."""
    global _owner, _received
    if "LOCAL_RANK" in os.environ:  # a rank started by a launcher
        die_with(os.getppid())
    _owner, _received = os.getpid(), None
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _install(_handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _owner = None


def _install(handler) -> None:
    for signum in SIGNALS:
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, handler)


def die_with(parent_pid: int) -> None:
    """Linux: this process gets SIGKILL when its parent `parent_pid` ends, however that ends.
    Elsewhere nothing happens."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent ended before the request was made
        os._exit(0)


def init_worker(parent_pid: int, worker_id: int) -> None:
    """A DataLoader `worker_init_fn`, as `functools.partial(init_worker, os.getpid())`: the worker
    dies with the process that made it, and leaves quietly (status 0) on SIGINT or SIGTERM, since the
    main process stops the run and shuts the workers down. (Torch's own SIGTERM handler dies by the
    signal, which the main process then raises as a worker failure.)"""
    die_with(parent_pid)
    _install(_leave)


def init_writer(parent_pid: int) -> None:
    """An output writer's initializer: it dies with the process that made it and ignores SIGINT and
    SIGTERM, so a write it started finishes (the main process stops the run and waits for it)."""
    die_with(parent_pid)
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def reinstall() -> None:
    """Install the stop handlers again in the process inside `stop_on_signals` (a library replaced them)."""
    if _owner == os.getpid():
        _install(_handle)


def stop_ranks(launcher, signum: int) -> None:
    """Pass a stop on to the ranks a Lightning launcher started, and wait a little for them."""
    launcher.kill(signum)
    deadline = time.monotonic() + RANKS_GRACE_S
    for process in getattr(launcher, "procs", []):
        try:
            process.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            pass
