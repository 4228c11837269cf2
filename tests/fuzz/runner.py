"""Run a loader on many files in a forked worker with a per-case timeout and a memory cap.

Outcomes: "loaded" (the loader returned), "refused" (it raised a KwsError: the wanted way to say
no), "untyped" (any other exception, MemoryError and RecursionError included), "hang" (no answer
within the timeout: the worker is killed and a new one forked) and "crash" (the worker died).
The last three are failures.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing as mp
import os
import random
import resource
import signal
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import KwsError

FAILURES = ("untyped", "hang", "crash")
GiB = 1 << 30


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _worker(conn, parent_end, load: Callable[[str], object], mem_bytes: int) -> None:
    parent_end.close()
    faulthandler.disable()  # a crash is an outcome here, not a traceback dump on the test's stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops us
    if mem_bytes:
        limit = _vm_size() + mem_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            path = conn.recv()
        except EOFError:
            return
        if path is None:
            return
        try:
            load(path)
            result = ("loaded", "")
        except KwsError as e:
            result = ("refused", str(e)[:300])
        except BaseException as e:  # noqa: BLE001 - what we are here to find
            result = ("untyped", "".join(traceback.format_exception(type(e), e, e.__traceback__))[-3000:])
        conn.send(result)


@dataclass
class Runner:
    """A forked worker running `load(path)`; `run(path)` -> (outcome, detail)."""

    load: Callable[[str], object]
    timeout_s: float = 10.0
    mem_bytes: int = 2 * GiB  # address space the worker may add to what it had at fork
    _proc: mp.Process | None = None
    _conn: object = None

    def _start(self) -> None:
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(child, parent, self.load, self.mem_bytes), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def _stop(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.join(5)
            self._conn.close()
        self._proc = None

    def run(self, path: str) -> tuple[str, str]:
        if self._proc is None or not self._proc.is_alive():
            self._stop()
            self._start()
        try:
            self._conn.send(path)
            if self._conn.poll(self.timeout_s):
                return self._conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            pass
        else:
            self._stop()
            return "hang", f"no answer within {self.timeout_s:g} s"
        self._proc.join(5)
        code = self._proc.exitcode
        self._stop()
        return "crash", f"worker died (exit code {code})"

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)  # the worker returns
            self._proc.join(5)
        self._stop()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Report:
    name: str
    counts: Counter = field(default_factory=Counter)
    failures: list[tuple[int, str, str, Path]] = field(default_factory=list)  # (case, outcome, detail, file)

    @property
    def failed(self) -> int:
        return sum(self.counts[k] for k in FAILURES)

    def summary(self) -> str:
        parts = ", ".join(f"{k} {self.counts[k]}" for k in ("loaded", "refused", *FAILURES))
        return f"{self.name}: {sum(self.counts.values())} cases: {parts}"


def campaign(fmt, cases: int, seed: int = 0, *, timeout_s: float = 10.0, mem_bytes: int = 2 * GiB,
             keep_dir: Path | None = None, progress: Callable[[int, Report], None] | None = None) -> Report:
    """Run `cases` mutations of `fmt`'s seeds (plus each seed itself) through its loader.

    Case i uses random.Random(f"{seed}:{fmt.name}:{i}"), so any failure is reproduced by its index
    alone. Failing inputs are copied to keep_dir (when given) as CASE-OUTCOME.SUFFIX.
    """
    seeds = fmt.seeds()
    if not seeds:
        raise ValueError(f"format {fmt.name} has no seeds")
    report = Report(fmt.name)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{fmt.name}-") as tmp, Runner(fmt.load, timeout_s, mem_bytes) as r:
        path = Path(tmp) / f"case{fmt.suffix}"
        for i in range(-len(seeds), cases):
            if i < 0:
                data = seeds[i]  # the seeds themselves must load
            else:
                rng = random.Random(f"{seed}:{fmt.name}:{i}")
                data = fmt.mutate(rng, rng.choice(seeds), seeds)
            path.write_bytes(data)
            outcome, detail = r.run(str(path))
            if i < 0 and outcome != "loaded":
                outcome, detail = "untyped", f"seed {len(seeds) + i} does not load: {detail}"
            report.counts[outcome] += 1
            if outcome in FAILURES:
                kept = path
                if keep_dir is not None:
                    keep_dir.mkdir(parents=True, exist_ok=True)
                    kept = keep_dir / f"{fmt.name}-{i}-{outcome}{fmt.suffix}"
                    kept.write_bytes(data)
                report.failures.append((i, outcome, detail, kept))
            if progress:
                progress(i, report)
    return report
