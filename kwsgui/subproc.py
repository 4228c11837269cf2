"""Run a job function in a child process, driven from a job worker's thread (no Qt here).

Some work holds Python's GIL in long C calls (importing torch: ~200 ms; tracing a model for
ONNX export: ~130 ms), which would freeze the GUI thread of the process running it. Such a job
runs `run_in_child(target, args, ctx)` in its worker thread: the target runs in another process
(forked from a clean server process that has imported torch once) with a `ChildContext` that has
the JobContext API (progress, stage, log, partial, check, cancel); every call is a message on a
queue that the worker thread relays to the real JobContext, and Stop in the GUI sets the
child's cancel Event. The target and everything it
sends must be picklable (module-level functions, frozen dataclasses).

The child is not a daemon: a daemonic process may not start children, and a job may start its
own worker pool (`kws dataset --jobs N` in the Dataset panel). Instead of the daemon flag, every
live child is stopped when this process exits (`_stop_children`, registered with atexit after
multiprocessing's own exit handler, so it runs first), and a child that gets SIGTERM unwinds
(SystemExit), so its pool's context manager terminates the pool's workers.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import multiprocessing.util  # noqa: F401  (registers its exit handler now, before ours: ours runs first)
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from core.errors import KwsError
from core.progress import Cancelled

JOIN_S = 30.0


class BaseJobContext:
    """The API a job function sees (progress, stage, log, partial, check, cancel); subclasses say
    where messages go. Progress is throttled here, at the source; a new stage shows at once."""

    def __init__(self, cancel, min_interval_s: float = 0.05):
        self.cancel, self.min_interval_s = cancel, min_interval_s
        self._last, self._text = 0.0, ""

    def _send(self, kind: str, value: Any) -> None:  # "progress" (done, total, text), "log", "partial"
        raise NotImplementedError

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def check(self) -> None:
        """Raise `Cancelled` when the user pressed Stop."""
        if self.cancel.is_set():
            raise Cancelled("stopped")

    def progress(self, done: int, total: int | None = None, text: str | None = None) -> None:
        """The core `(done, total)` callback protocol, plus an optional stage text."""
        changed = text is not None and text != self._text
        if text is not None:
            self._text = text
        total = int(total) if total is not None else 0
        now = time.monotonic()
        if (total > 0 and done >= total) or changed or now - self._last >= self.min_interval_s:
            self._last = now
            self._send("progress", (int(done), total, self._text))

    def stage(self, text: str, done: int = 0, total: int = 0) -> None:
        self.progress(done, total, text)

    def log(self, text: str) -> None:
        self._send("log", str(text))

    def partial(self, value: Any) -> None:
        self._send("partial", value)


class ChildContext(BaseJobContext):
    """Inside the child: every message goes on the queue to the parent's worker thread."""

    def __init__(self, q, cancel, min_interval_s: float = 0.05):
        super().__init__(cancel, min_interval_s)
        self._q = q

    def _send(self, kind: str, value: Any) -> None:
        self._q.put((kind, value))


def _terminated(_signum, _frame) -> None:
    sys.exit(143)  # unwind: `with Pool(...)` blocks terminate their workers on the way out


def _child_main(target: Callable, args: tuple, q, cancel, nice: int) -> None:
    signal.signal(signal.SIGTERM, _terminated)
    if nice and hasattr(os, "nice"):
        os.nice(nice)  # background work yields the CPU to the GUI process first
    ctx = ChildContext(q, cancel)
    try:
        q.put(("result", target(*args, ctx)))
    except Cancelled:
        q.put(("cancelled", None))
    except (KwsError, ValueError, OSError) as e:
        q.put(("error", str(e) or type(e).__name__))
    except (KeyboardInterrupt, SystemExit):  # SystemExit: SIGTERM from the parent (`_terminated`)
        q.put(("cancelled", None))
    except BaseException as e:  # a bug in the child: report it, the GUI stays up
        import traceback

        traceback.print_exc()
        q.put(("error", f"{type(e).__name__}: {e}"))


_PRELOAD = ["torch", "kwsgui.train_task", "kwsgui.dataset_task"]  # what the jobs run in a child import anyway


def _context():
    """forkserver where there is one: a clean process (never a fork of this one, which has Qt's
    and PortAudio's threads) that imports torch once, so each later job starts at once; else spawn."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


_LIVE: dict[int, tuple[Any, Any]] = {}  # id -> (process, its cancel Event): children not yet joined
_LIVE_LOCK = threading.Lock()


def _stop_children() -> None:
    """At exit: ask every job child to stop, give it a moment, then terminate it (multiprocessing
    would otherwise wait for a non-daemonic child forever)."""
    with _LIVE_LOCK:
        live = list(_LIVE.values())
    for _, cancel in live:
        cancel.set()
    deadline = time.monotonic() + 2.0
    for proc, _ in live:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


atexit.register(_stop_children)


def run_in_child(target: Callable, args: tuple, ctx, *, poll_s: float = 0.05, nice: int = 10) -> Any:
    """target(*args, child_ctx) in a spawned process (at a lower CPU priority: `nice`); its
    messages go to `ctx` (a JobContext). The child may start processes of its own."""
    mpc = _context()
    q, cancel = mpc.Queue(), mpc.Event()
    proc = mpc.Process(target=_child_main, args=(target, args, q, cancel, nice), daemon=False, name="kwsgui-job")
    proc.start()
    with _LIVE_LOCK:
        _LIVE[id(proc)] = (proc, cancel)
    try:
        while True:
            if ctx.cancel.is_set():
                cancel.set()
            try:
                kind, payload = q.get(timeout=poll_s)
            except queue.Empty:
                if not proc.is_alive() and q.empty():
                    raise KwsError(f"the job's process ended unexpectedly (exit code {proc.exitcode})") from None
                continue
            if kind == "progress":
                ctx.progress(*payload)
            elif kind == "log":
                ctx.log(payload)
            elif kind == "partial":
                ctx.partial(payload)
            elif kind == "result":
                return payload
            elif kind == "cancelled":
                raise Cancelled("stopped")
            elif kind == "error":
                raise KwsError(payload)
    finally:
        proc.join(JOIN_S)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        with _LIVE_LOCK:
            _LIVE.pop(id(proc), None)
        q.close()
