"""GUI responsiveness benchmark (`kws bench --gui` runs `python -m kwsgui.bench`).

Opens the real main window and, while each panel's real job runs on its worker thread, probes
the GUI thread with a timer: every PROBE_MS it notes how late the timer fired; the worst lateness
is the longest the GUI thread could not react (a stall). Phases: idle, live view (the demo wav
in real time through the compiled model: also the live view's frame rate), building a dataset,
training, compiling (+ verify), VAD tuning. Targets: no stall over 50 ms, 30 frames per second.

    python -m kwsgui.bench [--featurizer F --classifier C --categories T] [--data DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
PROBE_MS = 10
STALL_TARGET_MS = 50.0
FPS_TARGET = 30.0
WORDS = ("seven", "yes", "no", "bed", "marvin", "stop", "go", "left", "right", "up")


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    worst_stall_ms: float = 0.0
    p99_stall_ms: float = 0.0
    ticks: int = 0
    frame_rate: float | None = None
    note: str = ""


class Probe:
    """A PROBE_MS timer on the GUI thread; records how late each tick fired."""

    def __init__(self):
        from PyQt5.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(PROBE_MS)
        self.timer.timeout.connect(self._tick)
        self.lates: list[float] = []
        self._last = None

    def start(self) -> None:
        self.lates, self._last = [], time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lates.append(max(0.0, 1000 * (now - self._last) - PROBE_MS))
        self._last = now

    def stop(self) -> tuple[float, float, int]:
        self.timer.stop()
        if not self.lates:
            return 0.0, 0.0, 0
        s = sorted(self.lates)
        return s[-1], s[min(len(s) - 1, int(0.99 * len(s)))], len(s)


def run(args) -> list[Phase]:
    from PyQt5.QtCore import QEventLoop, QSettings, QTimer
    from PyQt5.QtWidgets import QApplication

    from core.models import DEMO_WAV
    from kwsgui.app import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    work = Path(tempfile.mkdtemp(prefix="kwsgui-bench-"))
    win = MainWindow(settings=QSettings(str(work / "bench.ini"), QSettings.IniFormat))
    win.load_startup_models(args.featurizer, args.classifier, args.categories)
    win.resize(1280, 800)
    win.show()
    view, data = win.live_view, Path(args.data)
    probe, phases = Probe(), []

    def wait(signal, timeout_s: float) -> bool:
        loop, done = QEventLoop(), {"ok": False}

        def fire(*_a):
            done["ok"] = True
            loop.quit()

        if signal is not None:
            signal.connect(fire)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec_()
        if signal is not None:
            signal.disconnect(fire)
        return done["ok"] or signal is None

    def measure(name: str, start, signal, timeout_s: float = 600, note: str = "") -> Phase:
        print(f"  {name} …", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        probe.start()
        if start() is False:
            raise SystemExit(f"{name}: could not start")
        ok = wait(signal, timeout_s)
        worst, p99, n = probe.stop()
        ph = Phase(name, time.perf_counter() - t0, worst, p99, n, note=note if ok else "timed out")
        phases.append(ph)
        return ph

    def panel_job(name: str, panel, key: str, start, timeout_s: float = 600, note: str = "") -> Phase:
        win.show_panel(key)
        app.processEvents()
        errors = []
        panel.job_failed.connect(errors.append)
        ph = measure(name, start, panel.job_finished, timeout_s, note)
        if errors:
            ph.note = f"failed: {errors[0][:80]}"
        return ph

    # idle
    win.show_panel("live")
    measure("idle", lambda: None, None, timeout_s=1.0, note="window open, nothing running")
    # live view: the demo in real time through the compiled backend
    view.backend_combo.setCurrentIndex(view.backend_combo.findData("compiled"))
    draws = []
    orig = view._draw

    def counting_draw(force: bool = False):
        fresh = view.spectrogram.pending
        orig(force)
        if fresh:
            draws.append(time.perf_counter())

    view._timer.timeout.disconnect()
    view._timer.timeout.connect(counting_draw)
    ph = measure("live view", lambda: view.play(DEMO_WAV, realtime=True, play_audio=False), view.stream_finished,
                 timeout_s=60)
    span = (draws[-1] - draws[0]) if len(draws) > 1 else 0.0
    ph.frame_rate = (len(draws) - 1) / span if span > 0 else 0.0
    ph.note = f"demo.wav real time, backend {view.backend_label.text().split(': ')[-1]}"
    # dataset: lists + build from real clips (noise mixed in)
    dp = win.dataset_panel
    audio = work / "audio"
    for w in WORDS:
        (audio / w).mkdir(parents=True, exist_ok=True)
        for f in sorted((data / "speech_commands_v0.01_sample" / w).glob("*.wav")):
            (audio / w / f.name).symlink_to(f)
    dp.add_folder(audio)
    dp.lists_out.set_path(work / "lists")
    dp.dataset_out.set_path(work / "datasets")
    dp.noise_dir.set_path(data / "background_noise")
    dp.noise_fraction.setValue(0.5)
    panel_job("lists", dp, "dataset", dp.make_lists, note=f"{len(WORDS)} word folders")
    panel_job("build", dp, "dataset", dp.build, note=f"{len(WORDS) * 10} real clips, noise at 50%, child process")
    # training: the ELL recipe's shape (2 x GRU 128), a few epochs
    tp = win.train_panel
    tp.outdir.set_path(work / "train")
    for k, v in (("epochs", args.epochs), ("batch_size", 16), ("hidden_size", 128), ("num_layers", 2)):
        tp.set_option(k, v)
    panel_job("train", tp, "training", tp.start, note=f"2 x GRU 128, {args.epochs} epochs, then ONNX + .kwm export")
    # compiling: host export, then build + verify
    cp = win.compile_panel
    cp.set_target("host")
    cp.outdir.set_path(work / "kws_host")
    cp.clip.set_path(DEMO_WAV)
    panel_job("compile", cp, "compile", cp.compile, note="lower + LLVM -O3 + export")
    panel_job("verify", cp, "compile", cp.verify, note="cmake build + demo run + host check")
    # tuning: auto-tune the VAD on real clips with noise
    vp = win.vad_panel
    lf = work / "tune_list.txt"
    root = data / "speech_commands_v0.01_sample"
    lf.write_text("".join(f"{f}\n" for w in WORDS for f in sorted((root / w).glob("*.wav"))[:4]))
    vp.tune_list.set_path(lf)
    vp.noise_dir.set_path(data / "background_noise")
    vp.trials.setValue(args.trials)
    vp.params_from_live()
    panel_job("tune", vp, "vad", vp.auto_tune, note=f"{len(WORDS) * 4} clips x 2 SNRs, {args.trials} trials")
    win.close()
    return phases


def report(phases: list[Phase]) -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    lines = [f"machine: {os.cpu_count()} cores, load average {load} (other processes share them); "
             f"Qt platform {os.environ.get('QT_QPA_PLATFORM')}",
             f"GUI thread stalls (probe every {PROBE_MS} ms; target: none over {STALL_TARGET_MS:.0f} ms) "
             f"and the live view's frame rate (target {FPS_TARGET:.0f} fps):",
             f"  {'phase':<12} {'time s':>7} {'worst ms':>9} {'p99 ms':>7} {'fps':>6}  note"]
    for p in phases:
        fps = f"{p.frame_rate:6.1f}" if p.frame_rate is not None else "     –"
        flag = "  !" if p.worst_stall_ms > STALL_TARGET_MS else ""
        lines.append(f"  {p.name:<12} {p.seconds:7.1f} {p.worst_stall_ms:9.1f} {p.p99_stall_ms:7.1f} {fps}  "
                     f"{p.note}{flag}")
    worst = max(phases, key=lambda p: p.worst_stall_ms)
    live = next((p for p in phases if p.frame_rate is not None), None)
    lines.append(f"worst stall: {worst.worst_stall_ms:.1f} ms ({worst.name}); "
                 + (f"live view {live.frame_rate:.1f} fps" if live else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kwsgui.bench", description=__doc__.splitlines()[0])
    devkit = SHARED / "ell_devkit_model"
    p.add_argument("--featurizer", default=str(devkit / "featurizer.ell"))
    p.add_argument("--classifier", default=str(devkit / "classifier.ell"))
    p.add_argument("--categories", default=str(devkit / "categories.txt"))
    p.add_argument("--data", default=str(SHARED), help="../shared/data (speech sample, noise)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--json", metavar="OUT", help="also write the numbers as JSON")
    args = p.parse_args(argv)
    for f in (args.featurizer, args.classifier, args.categories):
        if not Path(f).is_file():
            print(f"kwsgui.bench: {f} not found (pass --featurizer/--classifier/--categories)", file=sys.stderr)
            return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")
    phases = run(args)
    print(report(phases))
    if args.json:
        from core.fsutil import write_text_atomic

        write_text_atomic(args.json, json.dumps([asdict(ph) for ph in phases], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
