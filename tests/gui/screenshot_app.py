"""Run by test_screenshot.py under Xvfb (a real X server, QT_QPA_PLATFORM=xcb): opens the real
main window with the given models and drives every panel through its main flow, saving
`window.grab()` of each to OUT_DIR/<panel>.png once its job has finished:

  live      the demo wav at 2x real time, shot once the last keyword ("marvin") is detected
            (and, when imagemagick is there, the whole X screen to live_view-root.png)
  dataset   lists + datasets from 6 words of the real Speech Commands sample
  collect   a long take (real clips of "bed" with pauses and pink noise) imported: one card per word
  browse    the dataset step's audio folder checked with the DevKit classifier, by suspicion
  keyword   New keyword: "bed" from 10 real clips of 3 speakers, a small espeak-only recipe trained to the end
  training  a few epochs on that dataset: curves, test accuracy, confusion matrix
  models    the DevKit classifier.ell imported: the graph summary
  vad       the demo wav's features, level, noise floor and VAD signal
  compile   Cortex-M4 with the classifier in int8 (calibrated on 12 real clips): compile (flash / RAM),
            Verify on seven.wav under qemu-system-arm, Benchmark (int8 beside float)
  evaluate  20 real clips in continuous + VAD mode
  calibrate the Calibrate tab: 80 real clips over background noise, the DET curve of the DevKit model

Exit 0 when every shot was saved. STEPS (optional, comma-separated) runs only those panels.

    python screenshot_app.py OUT_DIR SETTINGS_INI FEATURIZER CLASSIFIER CATEGORIES DATA_DIR [STEPS]
"""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from PyQt5.QtCore import QSettings, QTimer  # noqa: E402
from PyQt5.QtWidgets import QApplication  # noqa: E402

from core.models import DEMO_WAV  # noqa: E402
from kwsgui.app import MainWindow  # noqa: E402

LAST_WORD = "DETECTED marvin"
TIMEOUT_MS = 330_000
# New keyword's recipe for the screenshot: small enough to train in about a minute here
KEYWORD_RECIPE = {"engines": ("espeak",), "synth_per_word": 60, "negative_takes": 2, "user_copies": 8,
                  "background_rows": 100, "epochs": 30, "hidden_size": 48, "num_layers": 1, "calibration_minutes": 5.0,
                  "target_fa_per_hour": 20.0, "jobs": 1, "members": 1}  # 1 FA on its 6-minute stream is 10/h
WORDS = ("seven", "yes", "no", "bed", "marvin", "stop")


def main() -> int:
    out, ini, featurizer, classifier, categories, data = sys.argv[1:7]
    out, data = Path(out), Path(data)
    work = out / "work"
    app = QApplication(sys.argv[:1])
    win = MainWindow(settings=QSettings(ini, QSettings.IniFormat))
    win.load_startup_models(featurizer, classifier, categories)
    win.resize(1280, 800)
    win.show()
    view = win.live_view
    state = {"rc": 3, "shots": []}
    steps = []

    def fail(why: str) -> None:
        print(why, file=sys.stderr)
        state["rc"] = 2
        win.close()

    def shoot(name: str) -> None:
        app.processEvents()
        path = out / ("live_view.png" if name == "live" else f"{name}.png")
        if not win.grab().save(str(path)):
            fail(f"cannot save {path}")
            return
        state["shots"].append(path.name)
        if name == "live" and shutil.which("import"):
            subprocess.run(["import", "-window", "root", str(out / "live_view-root.png")], check=False, timeout=30)

    def next_step() -> None:
        if not steps:
            state["rc"] = 0
            win.close()
            return
        steps.pop(0)()

    def after(panel, then, delay_ms: int = 400) -> None:
        """When the panel's job ends: fail on an error, else run `then` a few draws later."""

        def done(summary) -> None:
            panel.job_finished.disconnect(done)
            if summary.error:
                fail(f"{panel.title}: {summary.error}")
            else:
                QTimer.singleShot(delay_ms, then)

        panel.job_finished.connect(done)

    # ---------------------------------------------------------------- live
    def live() -> None:
        win.show_panel("live")

        def poll() -> None:
            if LAST_WORD in view.log.toPlainText():
                timer.stop()
                QTimer.singleShot(150, lambda: (view._draw(force=True), shoot("live"), view.stop(),
                                                QTimer.singleShot(200, next_step)))

        timer.timeout.connect(poll)
        timer.start(20)
        view.play(DEMO_WAV, realtime=True, speed=2.0, play_audio=False)

    # ---------------------------------------------------------------- dataset + training
    def dataset() -> None:
        p = win.dataset_panel
        win.show_panel("dataset")
        audio = audio_folder()
        p.add_folder(audio)
        p.lists_out.set_path(work / "lists")
        p.val_pct.setValue(20.0)
        p.test_pct.setValue(20.0)
        p.dataset_out.set_path(work / "datasets")
        p.noise_dir.set_path(data / "background_noise")
        p.noise_fraction.setValue(0.5)
        p.bad_list.set_path(data / "ell_examples" / "bad_list.txt")
        after(p, lambda: (after(p, lambda: (shoot("dataset"), next_step())), p.build()))
        p.make_lists()

    def audio_folder() -> Path:
        audio = work / "audio"
        for w in WORDS:
            (audio / w).mkdir(parents=True, exist_ok=True)
            for f in sorted((data / "speech_commands_v0.01_sample" / w).glob("*.wav")):
                if not (audio / w / f.name).exists():
                    (audio / w / f.name).symlink_to(f)
        return audio

    def collect() -> None:
        import numpy as np

        from core.audio.wav import read_wav, write_wav
        from core.evaluate.stream import mix_at_snr

        p = win.collect_panel
        win.show_panel("collect")
        parts = []
        for f in sorted((data / "speech_commands_v0.01_sample" / "bed").glob("*.wav")):
            x, _ = read_wav(f, 16000)
            parts += [x / max(1e-3, float(np.abs(x).max())) * 0.5, np.zeros(8000, np.float32)]
        take = np.concatenate(parts)
        noise, _ = read_wav(data / "background_noise" / "pink_noise.wav", 16000)
        write_wav(work / "take.wav", mix_at_snr(take, noise[: len(take)], 25.0), 16000)
        p.folder.set_path(work / "collected")
        p.label_edit.setText("bed")
        p.speaker_edit.setText("take")
        after(p, lambda: QTimer.singleShot(600, lambda: (shoot("collect"), next_step())))
        p.import_file(work / "take.wav")

    def browse() -> None:
        p = win.browser_panel
        win.show_panel("browse")
        p.folder.set_path(audio_folder())
        after(p, lambda: QTimer.singleShot(800, lambda: (shoot("browse"), next_step())))
        p.check()

    def keyword() -> None:
        p = win.keyword_panel
        win.show_panel("keyword")
        src = data / "speech_commands_v0.01_bed_cat_happy" / "bed"
        takes = {"a331d9cb": 4, "94e6864f": 3, "18c54a68": 3}  # 10 clips of 3 training speakers
        clips = [f for s, n in takes.items() for f in sorted(src.glob(f"{s}_nohash_*.wav"))[:n]]
        p.models_root.set_path(work / "models")
        p.word_edit.setText("bed")
        p.noise.set_path(data / "background_noise")
        p.add_files(clips)
        for name, value in KEYWORD_RECIPE.items():
            p.set_option(name, value)
        after(p, lambda: QTimer.singleShot(300, lambda: (shoot("keyword"), next_step())))
        p.train()

    def training() -> None:
        p = win.train_panel
        win.show_panel("training")
        p.outdir.set_path(work / "train")
        for name, value in (("hidden_size", 64), ("num_layers", 1), ("batch_size", 8), ("epochs", 40),
                            ("optimizer", "adam"), ("learning_rate", 0.003), ("normalize", True)):
            p.set_option(name, value)
        after(p, lambda: (shoot("training"), next_step()))
        p.start()

    # ---------------------------------------------------------------- models, vad
    def models() -> None:
        p = win.models_panel
        win.show_panel("models")
        p.categories.set_path(categories)
        after(p, lambda: (shoot("models"), next_step()))
        p.import_model(classifier)

    def vad() -> None:
        p = win.vad_panel
        win.show_panel("vad")
        p.params_from_live()
        after(p, lambda: (shoot("vad"), next_step()))
        p.load_clip(DEMO_WAV)

    # ---------------------------------------------------------------- compile, evaluate
    def compile_() -> None:
        p = win.compile_panel
        win.show_panel("compile")
        p.set_target("cortex-m4")
        p.module.setText("kws")
        p.outdir.set_path(work / "kws_m4")
        p.clip.set_path(data / "ell_examples" / "seven.wav")
        work.mkdir(parents=True, exist_ok=True)
        calib = work / "calibration_list.txt"
        calib.write_text("".join(f"{f.resolve()}\n" for w in WORDS for f in
                                 sorted((data / "speech_commands_v0.01_sample" / w).glob("*.wav"))[:2]))
        p.quantize.setChecked(True)
        p.calibration.set_path(calib)
        after(p, lambda: (after(p, lambda: (after(p, lambda: (shoot("compile"), next_step())), p.benchmark())),
                          p.verify()))
        p.compile()

    def evaluate() -> None:
        p = win.eval_panel
        win.show_panel("evaluate")
        root = data / "speech_commands_v0.01_sample"
        lf = work / "eval_list.txt"
        lf.write_text("".join(f"{f}\n" for w in ("seven", "bed", "marvin", "yes", "no")
                              for f in sorted((root / w).glob("*.wav"))[:4]))
        p.list_file.set_path(lf)
        p.set_mode("vad")
        after(p, lambda: (shoot("evaluate"), next_step()))
        p.evaluate()

    def calibrate() -> None:
        p = win.eval_panel
        win.show_panel("evaluate")
        p.tabs.setCurrentIndex(1)
        root = (data / "speech_commands_v0.01_sample").resolve()  # the list's paths are absolute
        work.mkdir(parents=True, exist_ok=True)
        lf = work / "held_out_list.txt"
        lf.write_text("".join(f"{f}\n" for w in ("seven", "bed", "marvin", "yes", "no", "stop", "go", "up")
                              for f in sorted((root / w).glob("*.wav"))))
        p.calib_clips.set_path(lf)
        p.calib_noise.set_path(data / "background_noise")
        p.gap_min.setValue(1.0)
        p.gap_max.setValue(4.0)
        after(p, lambda: (shoot("calibrate"), next_step()))
        p.calibrate()

    # training and New keyword load their models into the live view only on request: later panels use the DevKit's
    steps += [live, dataset, collect, browse, keyword, training, models, vad, compile_, evaluate, calibrate]
    if len(sys.argv) > 7:  # only some panels (the names of the step functions)
        wanted = set(sys.argv[7].split(","))
        steps[:] = [f for f in steps if f.__name__.strip("_") in wanted]
    for panel in (win.dataset_panel, win.collect_panel, win.browser_panel, win.keyword_panel, win.train_panel,
                  win.models_panel, win.vad_panel, win.compile_panel, win.eval_panel):
        panel.job_failed.connect(lambda text, t=panel.title: print(f"{t} failed: {text}", file=sys.stderr))
    view.stream_failed.connect(lambda text: print(f"stream failed: {text}", file=sys.stderr))
    timer = QTimer()
    QTimer.singleShot(TIMEOUT_MS, lambda: fail(f"timed out after {state['shots']}"))
    QTimer.singleShot(300, next_step)
    app.exec_()
    print(" ".join(state["shots"]))
    return state["rc"]


if __name__ == "__main__":
    sys.exit(main())
