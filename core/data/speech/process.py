"""Running synthesizers as separate processes: one-shot commands that write a wav, and long-lived
workers (one per calling thread) spoken to over pipes, with time limits on every read."""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from core.data.speech import Speech
from core.errors import DataError

TIMEOUT_S = 60.0


def which(program: str) -> str | None:
    return shutil.which(program)


def read_speech(path: Path, what: str) -> Speech:
    from core.audio.wav import read_wav

    if not path.is_file() or path.stat().st_size <= 44:
        raise DataError(f"{what}: wrote no audio")
    x, sr = read_wav(path)
    return Speech(x, sr)


class TempFiles:
    """One private temporary folder per engine; a file name per thread (threads run in parallel)."""

    def __init__(self, prefix: str):
        self.prefix, self._dir = prefix, None
        self._lock = threading.Lock()

    def path(self, suffix: str = ".wav") -> Path:
        with self._lock:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix=self.prefix)
        return Path(self._dir) / f"{threading.get_ident()}{suffix}"

    def cleanup(self) -> None:
        with self._lock:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None


def run_once(cmd: list[str], out: Path, what: str, timeout_s: float = TIMEOUT_S) -> Speech:
    """Run a synthesizer that writes `out`, then read it."""
    out.unlink(missing_ok=True)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DataError(f"{what}: no result after {timeout_s:.0f} s") from None
    if r.returncode != 0:
        raise DataError(f"{what} failed: {r.stderr.strip()[-300:] or f'exit {r.returncode}'}")
    return read_speech(out, what)


class Worker:
    """A long-lived child process: write requests to its stdin, read replies from one of its pipes
    (`reply`: "stdout" or "stderr"; the other goes to a log file whose tail explains failures)."""

    def __init__(self, cmd: list[str], what: str, *, reply: str = "stdout", env: dict | None = None,
                 cwd: str | None = None):
        self.what = what
        self._log = tempfile.TemporaryFile()
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        pipes["stderr" if reply == "stdout" else "stdout"] = self._log
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, env=env, cwd=cwd, **pipes)
        except OSError as e:
            self._log.close()
            raise DataError(f"{what}: cannot start: {e.strerror or e}") from None
        self._fd = (self.proc.stdout if reply == "stdout" else self.proc.stderr).fileno()
        self._buf = bytearray()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._fd, selectors.EVENT_READ)

    def send(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise DataError(f"{self.what}: the process ended: {self.log_tail()}") from None

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not self._sel.select(left):
            self.close()
            raise DataError(f"{self.what}: no reply within {TIMEOUT_S:.0f} s")
        chunk = os.read(self._fd, 1 << 16)
        if not chunk:
            self.proc.wait(timeout=5)
            raise DataError(f"{self.what}: the process ended (exit {self.proc.returncode}): {self.log_tail()}")
        self._buf += chunk

    def readline(self, timeout_s: float = TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            self._fill(deadline)
        i = self._buf.index(b"\n")
        line = bytes(self._buf[:i])
        del self._buf[: i + 1]
        return line.decode("utf-8", "replace")

    def read_exact(self, n: int, timeout_s: float = TIMEOUT_S) -> bytes:
        deadline = time.monotonic() + timeout_s
        while len(self._buf) < n:
            self._fill(deadline)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def log_tail(self, n: int = 400) -> str:
        try:
            self._log.seek(0)
            text = self._log.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return text[-n:] or "no message"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._sel.close()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        self._log.close()


class WorkerPool:
    """One Worker per calling thread, started on first use; `close_all` ends them all."""

    def __init__(self, start):
        self._start = start
        self._local = threading.local()
        self._all: list[Worker] = []
        self._lock = threading.Lock()

    def get(self) -> Worker:
        w = getattr(self._local, "worker", None)
        if w is None or not w.alive:
            w = self._start()
            self._local.worker = w
            with self._lock:
                self._all.append(w)
        return w

    def drop(self) -> None:
        """Forget (and end) this thread's worker, e.g. after it stopped answering."""
        w = getattr(self._local, "worker", None)
        if w is not None:
            self._local.worker = None
            w.close()

    def close_all(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for w in workers:
            w.close()
        self._local = threading.local()
