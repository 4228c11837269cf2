"""The Evaluate panel's Calibrate tab (`kws calibrate` in the app), mixed into EvalPanel.

Held-out clips (a list, or a folder of word folders; by default the panel's list) become one long
stream with background noise under it (core.evaluate.stream); the live view's models run over it once
on the panel's job, every smoothing x threshold is scored (core.evaluate.calibrate) and the DET curve
drawn (kwsgui.det_plot) with the operating point for the target false accepts per hour ringed.
Store in model writes that threshold and smoothing into the classifier as the CLI does
(core.evaluate.calibrate.with_detector, then modelfile.save, which writes a temporary and renames
it): in place for a .kwm, else as a new .kwm; the live view reloads it and uses them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PyQt5.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import KwsError
from core.evaluate.calibrate import Calibration
from core.evaluate.passrate import read_list
from kwsgui.det_plot import DetPlot
from kwsgui.jobs import JobContext
from kwsgui.widgets import NOTE_STYLE, NumberBox, PathField


@dataclass(frozen=True)
class CalibrationReport:
    calibration: Calibration
    categories: tuple[str, ...]
    source: str  # the held-out list or folder
    noise: str | None
    snr_db: float
    clips: int


def calibration_clips(source: str, limit: int = 0) -> list[tuple[Path, str]]:
    """(wav, label) pairs of a list file, or of a folder of word folders (label = the folder)."""
    from core.errors import DataError
    from core.evaluate.passrate import labelled_clips

    if Path(source).is_dir():
        clips = labelled_clips(source)
        if not clips:
            raise DataError(f"{source}: no word folders with clips in them")
    else:
        clips = read_list(source)
    clips = clips[: limit or None]
    if not any(Path(c).is_file() for c, _ in clips):  # (core.evaluate.stream fails on no clip with noise)
        raise DataError(f"{source}: none of its {len(clips)} clips exists (the first: {clips[0][0]})")
    return clips


def calibrate_job(models, source: str, noise: str | None, snr_db: float, gap_s: tuple[float, float],
                  target_fa_per_hour: float, limit: int, ctx: JobContext) -> CalibrationReport:
    from core.audio.sources import list_wavs
    from core.evaluate.calibrate import calibrate_on_clips
    from core.pipeline import KeywordSpotter

    clips = calibration_clips(source, limit)
    noise_files = list_wavs(noise) if noise else None
    ctx.stage("compiling the models")
    spotter = KeywordSpotter(models.featurizer, models.classifier)
    cats = tuple(models.labels)
    ctx.stage(f"assembling the stream of {len(clips)} clips")
    cal = calibrate_on_clips(spotter, cats, clips, noise_files=noise_files, snr_db=snr_db, gap_s=gap_s,
                             target_fa_per_hour=target_fa_per_hour,
                             progress=lambda d, t: ctx.progress(d, t, "seconds of stream classified"),
                             cancel=ctx.cancel)
    return CalibrationReport(cal, cats, source, noise, snr_db, len(clips))


def calibration_text(r: CalibrationReport) -> tuple[str, str]:
    """(the chosen point, the stream) as `kws calibrate` prints them."""
    cal, c = r.calibration, r.calibration.chosen
    verdict = "meets" if cal.met else "NO point meets"
    head = (f"threshold {c.threshold:g}, smoothing {c.smoothing}: {100 * c.frr:.1f} % missed "
            f"({c.misses}/{c.hits + c.misses}), {c.fa_per_hour:.2f} false accepts/h ({verdict} the target "
            f"of {cal.target_fa_per_hour:g})")
    noise = f"noise {Path(r.noise).name} at {r.snr_db:g} dB SNR" if r.noise else "silent gaps"
    detail = (f"stream {cal.duration_s / 60:.1f} min: {cal.positives} keyword clips, {cal.others} other words, "
              f"{noise}; one false accept = {cal.fa_resolution_per_hour:.2f} FA/h; not keywords: "
              f"{', '.join(cal.ignore) or 'none'}")
    return head, detail


class CalibrationTab:
    """The Calibrate tab of a job panel that has `live`, `list_file`, `run_job`, `show_error`."""

    def _calibration_tab(self, s) -> QWidget:
        self.calibration: CalibrationReport | None = None
        self._calibrated = None  # (classifier graph, its path) the calibration ran on
        self.calib_clips = PathField(s, "eval/calib_clips", caption="Held-out clips: a list file",
                                     filt="Lists (*.txt);;All files (*)",
                                     placeholder="held-out list, or a folder of word folders (empty: the List above)")
        folder_button = QPushButton("Folder…")
        folder_button.setToolTip("Held-out clips in word folders (FOLDER/WORD/*.wav) instead of a list")
        folder_button.clicked.connect(self._choose_calib_folder)
        self.calib_noise = PathField(s, "eval/calib_noise", mode="dir", caption="Background noise recordings",
                                     default=str(s.value("dataset/noise_dir", "") or ""),
                                     placeholder="noise under the whole stream (empty: silent gaps)")
        self.target_fa = NumberBox(4)
        self.target_fa.setRange(0.0, 10_000.0)
        self.target_fa.setValue(float(s.value("eval/target_fa_per_hour", 1.0)))
        self.target_fa.setToolTip("the most false accepts per hour the operating point may have")
        self.snr = QDoubleSpinBox()
        self.snr.setRange(-20.0, 80.0)
        self.snr.setValue(float(s.value("eval/calib_snr_db", 20.0)))
        self.snr.setSuffix(" dB")
        self.gap_min, self.gap_max = QDoubleSpinBox(), QDoubleSpinBox()
        for w, key, default in ((self.gap_min, "eval/gap_min_s", 0.5), (self.gap_max, "eval/gap_max_s", 1.5)):
            w.setRange(0.0, 600.0)
            w.setSuffix(" s")
            w.setValue(float(s.value(key, default)))
        self.gap_max.setToolTip("longer gaps: more background per clip, so small false-accept rates can be told apart")
        self.calib_limit = QSpinBox()
        self.calib_limit.setRange(0, 1_000_000)
        self.calib_limit.setSpecialValueText("all")
        self.calib_button = QPushButton("▶  Calibrate")
        self.calib_button.clicked.connect(lambda: self.calibrate())
        self.store_button = QPushButton("Store in model")
        self.store_button.setToolTip("Write the chosen threshold and smoothing into the classifier (a .kwm in place, "
                                     "else a new .kwm) and reload it in the live view")
        self.store_button.setEnabled(False)
        self.store_button.clicked.connect(lambda: self.store_in_model())
        form = QFormLayout()
        clips_row = QHBoxLayout()
        clips_row.addWidget(self.calib_clips, 1)
        clips_row.addWidget(folder_button)
        form.addRow("Held-out clips", clips_row)
        form.addRow("Noise", self.calib_noise)
        row = QHBoxLayout()
        for label, w in (("Target FA/h", self.target_fa), ("SNR", self.snr), ("Gaps", self.gap_min),
                         ("to", self.gap_max), ("Clips", self.calib_limit)):
            row.addWidget(QLabel(label))
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.calib_button)
        row.addWidget(self.store_button)
        form.addRow("", row)
        self.calib_label = QLabel("no calibration yet")
        self.calib_label.setStyleSheet("font-size: 12pt; font-weight: bold;")
        self.calib_label.setWordWrap(True)
        self.calib_detail = QLabel()
        self.calib_detail.setStyleSheet(NOTE_STYLE)
        self.calib_detail.setWordWrap(True)
        self.det = DetPlot()
        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.addLayout(form)
        lay.addWidget(self.calib_label)
        lay.addWidget(self.calib_detail)
        lay.addWidget(self.det, 1)
        return tab

    def _choose_calib_folder(self) -> None:
        start = self.calib_clips.text() or str(self.settings.value("dirs/last", "") or "")
        path = QFileDialog.getExistingDirectory(self, "Held-out clips in word folders", start)
        if path:
            self.calib_clips.set_path(path)

    def calibrate(self) -> bool:
        m = self.live.models if self.live is not None else None
        if m is None or m.classifier is None:
            self.show_error("the live view has no classifier to calibrate")
            return False
        source = self.calib_clips.text() or self.list_file.text()
        if not source:
            self.show_error("choose held-out clips (a list or a folder of word folders) to calibrate on")
            return False
        gaps = (self.gap_min.value(), self.gap_max.value())
        if gaps[0] > gaps[1]:
            self.show_error(f"gaps: the shortest ({gaps[0]:g} s) is longer than the longest ({gaps[1]:g} s)")
            return False
        noise, snr, target, limit = self.calib_noise.text() or None, self.snr.value(), self.target_fa.value(), \
            self.calib_limit.value()
        for key, v in (("eval/target_fa_per_hour", target), ("eval/calib_snr_db", snr), ("eval/gap_min_s", gaps[0]),
                       ("eval/gap_max_s", gaps[1])):
            self.remember(key, v)
        self.calibration, self._calibrated = None, (m.classifier, m.classifier_path)
        self.store_button.setEnabled(False)
        self.calib_label.setText("calibrating…")
        self.calib_detail.clear()
        return self.run_job("Calibrate", lambda ctx: calibrate_job(m, source, noise, snr, gaps, target, limit, ctx),
                            on_result=self._calibrated_done)

    def _calibrated_done(self, r: CalibrationReport) -> None:
        self.calibration = r
        head, detail = calibration_text(r)
        self.calib_label.setText(head)
        self.calib_detail.setText(detail)
        self.det.set_calibration(r.calibration)
        self.store_button.setEnabled(True)

    def store_in_model(self, dest: str | Path | None = None) -> Path | None:
        """The chosen threshold and smoothing into the calibrated classifier: `dest`, else the classifier's
        own .kwm, else a new .kwm the user names. The live view reloads it when it still runs that classifier."""
        from core.evaluate.calibrate import with_detector
        from core.graph import modelfile

        r, calibrated = self.calibration, self._calibrated
        if r is None or calibrated is None:
            self.show_error("calibrate first")
            return None
        graph, path = calibrated
        if dest is None:
            if path and Path(path).suffix.lower() == ".kwm" and Path(path).is_file():
                dest = path
            else:
                start = str(Path(path).with_suffix(".kwm")) if path and Path(path).parent.is_dir() else ""
                dest, _ = QFileDialog.getSaveFileName(self, "Store the calibrated classifier as", start,
                                                      "Models (*.kwm)")
                if not dest:
                    return None
        dest = Path(dest)
        if dest.suffix.lower() != ".kwm":
            self.show_error(f"{dest}: the calibrated classifier is stored as a .kwm model file")
            return None
        try:
            modelfile.save(with_detector(graph, r.calibration, r.categories), dest)
        except Exception as e:  # KwsError names the file; anything else is still only this file
            self.show_error(str(e) if isinstance(e, KwsError) else f"{dest}: {type(e).__name__}: {e}")
            return None
        self.clear_error()
        c = r.calibration.chosen
        self.message.emit(f"Stored threshold {c.threshold:g} and smoothing {c.smoothing} in {dest}")
        self.calib_detail.setText(f"{self.calib_detail.text()} · stored in {dest}")
        live = self.live
        if live is not None and live.models.classifier is graph:
            live.load_classifier(dest)  # the live view now uses the stored threshold
        self._calibrated = (modelfile.load(dest), str(dest))
        return dest
