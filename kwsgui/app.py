"""The application: main window (a side list of panels, menus, status bar) and the `kwsgui`
entry point. Panels: Live, Dataset, Collect, Browse, New keyword, Training, Models, VAD, Compile,
Evaluate; each runs its long jobs on its own worker thread, and the window remembers the panel last
shown.

    python main.py [--featurizer F] [--classifier C] [--categories T] [--wav W] [--panel P]
                   [--quit-after S]
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from PyQt5.QtCore import QSettings, QSize, QStandardPaths, QTimer
from PyQt5.QtGui import QCloseEvent
from PyQt5.QtWidgets import (
    QAction,
    QApplication,
    QHBoxLayout,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from core.errors import KwsError
from core.models import DEFAULT_FEATURIZER
from kwsgui import APPLICATION, ORGANIZATION
from kwsgui.live_view import LiveView, app_settings
from kwsgui.model_set import ModelSet
from kwsgui.panel import Panel

STATUS_MS = 8000
NAV_STYLE = """
QListWidget { font-size: 11pt; border: none; background: palette(window); }
QListWidget::item { padding: 9px 10px; }
QListWidget::item:selected { background: #2d6db5; color: white; border-radius: 4px; }
"""


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, models: ModelSet | None = None):
        super().__init__()
        self.settings = settings if settings is not None else app_settings()
        self.setWindowTitle("kwsgui — keyword spotting workbench")
        if models is None:
            models, error = startup_default_models()
        else:
            error = None
        self.live_view = LiveView(self, settings=self.settings, models=models)
        self.nav = QListWidget()
        self.nav.setStyleSheet(NAV_STYLE)
        self.nav.setFixedWidth(130)
        self.nav.setIconSize(QSize(0, 0))
        self.stack = QStackedWidget()
        self.panels: dict[str, QWidget] = {}
        self._add_panel("live", self.live_view)
        self._build_panels()
        central = QWidget()
        lay = QHBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.nav)
        lay.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.nav.currentRowChanged.connect(self._panel_changed)
        self.live_view.models_changed.connect(self._models_changed)
        self._models_changed(self.live_view.models)
        self._build_menus()
        self.resize(1280, 800)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.show_panel(str(self.settings.value("window/panel", "live")))
        if error:
            self.live_view.show_error(error)
        self.statusBar().showMessage("Ready", STATUS_MS)

    def _add_panel(self, key: str, panel: QWidget) -> None:
        self.panels[key] = panel
        self.nav.addItem(getattr(panel, "title", key.title()))
        self.stack.addWidget(panel)
        panel.message.connect(lambda text: self.statusBar().showMessage(text, STATUS_MS))

    def _build_panels(self) -> None:
        """The job panels; each gets the live view to read or change its models."""
        from kwsgui.dataset_panel import DatasetPanel
        from kwsgui.train_panel import TrainPanel

        s, live = self.settings, self.live_view
        self.dataset_panel = DatasetPanel(self, settings=s, live=live)
        self._add_panel("dataset", self.dataset_panel)
        from kwsgui.collect_panel import CollectPanel

        self.collect_panel = CollectPanel(self, settings=s, live=live)
        self._add_panel("collect", self.collect_panel)
        from kwsgui.browser_panel import BrowserPanel

        self.browser_panel = BrowserPanel(self, settings=s, live=live)
        self._add_panel("browse", self.browser_panel)
        from kwsgui.keyword_panel import KeywordPanel

        self.keyword_panel = KeywordPanel(self, settings=s, live=live)
        self._add_panel("keyword", self.keyword_panel)
        self.keyword_panel.use_in_live.connect(lambda: self.show_panel("live"))
        self.keyword_panel.record_requested.connect(self._record_keyword)
        self.train_panel = TrainPanel(self, settings=s, live=live)
        self._add_panel("training", self.train_panel)
        self.dataset_panel.dataset_built.connect(self.train_panel.dataset.set_path)
        self.train_panel.use_in_live.connect(lambda: self.show_panel("live"))
        from kwsgui.models_panel import ModelsPanel

        self.models_panel = ModelsPanel(self, settings=s, live=live)
        self._add_panel("models", self.models_panel)
        self.models_panel.use_in_live.connect(lambda: self.show_panel("live"))
        from kwsgui.vad_panel import VadPanel

        self.vad_panel = VadPanel(self, settings=s, live=live)
        self._add_panel("vad", self.vad_panel)
        self.models_panel.vad_params = self.vad_panel.params  # "Add VAD" uses the sliders
        from kwsgui.compile_panel import CompilePanel

        self.compile_panel = CompilePanel(self, settings=s, live=live)
        self._add_panel("compile", self.compile_panel)
        from kwsgui.eval_panel import EvalPanel

        self.eval_panel = EvalPanel(self, settings=s, live=live)
        self._add_panel("evaluate", self.eval_panel)
        self.eval_panel.open_in_live.connect(self._open_in_live)

    def _record_keyword(self, word: str) -> None:
        """New keyword's Record: the Collect panel with the word as its label (and a folder to put it in)."""
        p = self.collect_panel
        if p.root() is None:
            p.folder.set_path(Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)) / "collected")
        p.label_edit.setText(word)
        p.reload()
        self.show_panel("collect")

    def _open_in_live(self, path: str) -> None:
        self.show_panel("live")
        self.live_view.play(path)

    def show_panel(self, key: str) -> None:
        keys = list(self.panels)
        self.nav.setCurrentRow(keys.index(key) if key in keys else 0)

    def _panel_changed(self, row: int) -> None:
        if row < 0:
            return
        self.stack.setCurrentIndex(row)
        self.settings.setValue("window/panel", list(self.panels)[row])

    @property
    def current_panel(self) -> str:
        return list(self.panels)[max(0, self.nav.currentRow())]

    def _build_menus(self) -> None:
        acts = self.live_view.actions_
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(acts["wav"])
        file_menu.addSeparator()
        for key in ("featurizer", "builtin", "classifier", "no_classifier", "categories"):
            file_menu.addAction(acts[key])
        file_menu.addSeparator()
        file_menu.addAction(QAction("&Quit", self, shortcut="Ctrl+Q", triggered=self.close))
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(QAction("&About", self, triggered=self._about))

    def _models_changed(self, models: ModelSet) -> None:
        has_classifier = models.classifier is not None
        self.live_view.actions_["no_classifier"].setEnabled(has_classifier)

    def _about(self) -> None:
        QMessageBox.about(self, "About kwsgui",
                          "kwsgui: a workbench for audio keyword spotting.\n"
                          "Live mel spectrogram, class probabilities and detections of ELL-style models.")

    def load_startup_models(self, featurizer: str | None = None, classifier: str | None = None,
                            categories: str | None = None) -> None:
        """Models named on the command line; without any, the ones used last time (if the files
        still exist); otherwise the defaults stay. Errors are shown in the live view."""
        if not (featurizer or classifier or categories):
            saved = [str(self.settings.value(f"paths/{k}", "") or "") for k in ("featurizer", "classifier",
                                                                              "categories")]
            featurizer, classifier, categories = (p if p and Path(p).is_file() else None for p in saved)
        if not (featurizer or classifier or categories):
            return
        view = self.live_view
        if featurizer or classifier:
            view.set_models(view.models.without_classifier())
        if featurizer:
            view.load_featurizer(featurizer)
        if classifier:
            view.load_classifier(classifier)
        if categories:
            view.load_categories(categories)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.live_view.shutdown()  # stops and joins the streaming thread
        for panel in self.panels.values():
            if isinstance(panel, Panel):
                panel.shutdown()  # stops each job; what it already wrote stays
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.sync()
        super().closeEvent(event)
        if event.isAccepted():
            self._clear_scenes()

    def _clear_scenes(self) -> None:
        """Take every plot's items out of its scene now, while all of them are alive: a scene torn
        down later by the garbage collector can call into a half-deleted item (pyqtgraph does the
        same at exit)."""
        import pyqtgraph as pg

        for view in self.findChildren(pg.GraphicsView):
            scene = view.scene()
            if scene is not None:
                scene.clear()


def startup_default_models() -> tuple[ModelSet, str | None]:
    """The bundled models, or the built-in featurizer with the reason the bundle was unusable."""
    try:
        return ModelSet.default(), None
    except KwsError as e:
        return ModelSet.builtin(), f"Bundled models unusable, using the built-in featurizer: {e}"
    except Exception as e:  # a broken asset must not keep the app from starting
        where = DEFAULT_FEATURIZER.parent
        return ModelSet.builtin(), f"Bundled models in {where} unusable ({type(e).__name__}: {e})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kwsgui", description="Keyword spotting workbench (live view).")
    p.add_argument("--featurizer", help="featurizer model (.kwm, .ell)")
    p.add_argument("--classifier", help="classifier model (.kwm, .ell)")
    p.add_argument("--categories", help="categories.txt: one label per class")
    p.add_argument("--wav", help="wav file to play at start")
    p.add_argument("--panel", help="first panel: live, dataset, collect, browse, keyword, training, models, vad, "
                                   "compile, evaluate")
    p.add_argument("--quit-after", type=float, metavar="SECONDS", help="close the app after SECONDS (tests)")
    args, _qt_args = p.parse_known_args(argv)
    if args.quit_after is not None and args.quit_after < 0:
        p.error(f"--quit-after must be >= 0, got {args.quit_after}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    QApplication.setOrganizationName(ORGANIZATION)
    QApplication.setApplicationName(APPLICATION)
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    window = MainWindow()
    window.load_startup_models(args.featurizer, args.classifier, args.categories)
    if args.panel or args.wav:
        window.show_panel(args.panel or "live")
    window.show()
    if args.wav:
        window.live_view.play(args.wav)
    if args.quit_after is not None:
        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    # Ctrl+C in the terminal closes the window cleanly; the idle timer lets Python see the signal.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    return app.exec_()


if __name__ == "__main__":
    sys.exit(main())
