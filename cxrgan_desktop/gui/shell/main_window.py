"""The main window: the viewer in the centre, task panels in a dock, the session gallery
below, and a status bar with the model, the device and the pixel under the cursor.

The window owns no image logic: generation and reading run as library jobs in a
:class:`JobRunner`; windowing lives in the viewer and ``imaging``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QStackedWidget,
    QTabWidget,
)

from cxrgan_desktop import __version__
from cxrgan_desktop.core import paths
from cxrgan_desktop.core.settings import Settings, load_settings, save_settings
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.gui.panels.fid import FIDPanel
from cxrgan_desktop.gui.panels.fid_controller import FIDController
from cxrgan_desktop.gui.panels.generate import GeneratePanel, GenerateRequest
from cxrgan_desktop.gui.panels.lco import LCOPanel, LCOPanelRequest
from cxrgan_desktop.gui.panels.models import ModelLibrary
from cxrgan_desktop.gui.panels.study import StudyPanel
from cxrgan_desktop.gui.panels.train import TrainPanel
from cxrgan_desktop.gui.panels.tstr import TSTRPanel
from cxrgan_desktop.gui.shell import help_texts
from cxrgan_desktop.gui.shell.menus import build_menus
from cxrgan_desktop.gui.shell.model_watcher import ModelFolderWatcher
from cxrgan_desktop.gui.shell.preferences import PreferencesDialog, to_viewer_preferences
from cxrgan_desktop.gui.viewer.gallery import Gallery, GalleryEntry
from cxrgan_desktop.gui.viewer.viewer import CompareView, ImageViewer

# All files first: PACS exports are often DICOM files without an extension, which an
# extension filter would hide; files that are not images are listed with the reason.
IMAGE_FILTER = ("All files, DICOM without extension included (*);;"
                "Images with a known extension (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff)")
MODEL_FILTER = "Model files (*.safetensors *.pth *.pt *.ckpt);;All files (*)"


MAX_LISTED_SKIPS = 30  # a dialog taller than the screen helps nobody


def skipped_files_text(opened: int, skipped: list, limit: int = MAX_LISTED_SKIPS,
                       verb: str = "Opened") -> str:
    """The one message after Open (or Export): how many images went through, then each file
    that did not with its reason (the first ``limit``; the rest counted)."""
    lines = [f"{verb} {opened} image(s). {len(skipped)} file(s) were not "
             f"{verb.lower()}:", ""]
    lines += [f"{item.shown}: {item.reason}" for item in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"… and {len(skipped) - limit} more")
    return "\n".join(lines)


def _scrolling(panel) -> QScrollArea:
    """A task panel that scrolls vertically when the screen is short (a 768 px laptop),
    rather than forcing the main window taller than the screen."""
    area = QScrollArea()
    area.setWidget(panel)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumWidth(panel.minimumSizeHint().width() + 16)
    return area


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else load_settings()
        self.setWindowTitle(f"cxrgan-desktop {__version__}")
        self.resize(1400, 900)
        self.runner: JobRunner | None = None
        self._model_cache: tuple[str, float, object] | None = None  # path, mtime, model
        self._last_snapshot = 0.0  # when the viewer last showed an LCO snapshot

        self.viewer = ImageViewer()
        self.compare = CompareView()
        self.centre = QStackedWidget()
        self.centre.addWidget(self.viewer)
        self.centre.addWidget(self.compare)
        self.setCentralWidget(self.centre)
        self.setAcceptDrops(True)
        self.generate_panel = GeneratePanel()
        self.library = ModelLibrary()
        self.tasks = QTabWidget()
        self.train_panel = TrainPanel()
        self.lco_panel = LCOPanel()
        self.fid_panel = FIDPanel()
        self.study_panel = StudyPanel(self.settings)
        self.tstr_panel = TSTRPanel(self.settings.tstr, self.settings.device)
        for panel, title in ((self.generate_panel, "Generate"), (self.lco_panel, "Synthesise"),
                             (self.train_panel, "Train"), (self.fid_panel, "FID"),
                             (self.study_panel, "Study"), (self.tstr_panel, "TSTR"),
                             (self.library, "Models")):
            self.tasks.addTab(_scrolling(panel), title)
        self.tasks_dock = self._dock("Tasks", self.tasks, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.gallery = Gallery()
        self.gallery_dock = self._dock("Session images", self.gallery,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)

        self.model_label, self.device_label = QLabel("no model"), QLabel("device: …")
        self.pixel_label = QLabel("")
        self.pixel_label.setMinimumWidth(260)
        for label in (self.pixel_label, self.model_label, self.device_label):
            self.statusBar().addPermanentWidget(label)

        build_menus(self)
        self._connect()
        self.generate_panel.load_settings(self.settings)
        self.lco_panel.load_settings(self.settings.lco)
        self.fid = FIDController(self, self.fid_panel, self.settings)
        from cxrgan_desktop.engine.classifier.installed import classifiers_dir

        # models and classifiers installed from the command line while the window is open
        self.model_watcher = ModelFolderWatcher([paths.models_dir(), classifiers_dir()], self)
        self.model_watcher.changed.connect(self.refresh_model_lists)
        self._restore_geometry()
        self._update_model_label()
        self.statusBar().showMessage("Ready. Open an image (Ctrl+O) or generate (Ctrl+G).")
        self._device_probe = self._probe_devices()  # imports torch off the GUI thread

    # -- layout -----------------------------------------------------------------------------
    def _dock(self, title: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _connect(self) -> None:
        self.generate_panel.generateRequested.connect(self.start_generate)
        self.generate_panel.cancelRequested.connect(self.cancel_job)
        self.generate_panel.openModelRequested.connect(self.open_model)
        self.lco_panel.lcoRequested.connect(self.start_lco)
        self.lco_panel.cancelRequested.connect(self.cancel_job)
        self.gallery.entryActivated.connect(self.show_entry)
        self.viewer.pixelHovered.connect(self._show_pixel)
        self.viewer.hoverLeft.connect(lambda: self.pixel_label.setText(""))
        self.generate_panel.model_box.currentIndexChanged.connect(self._update_model_label)
        self.library.detailsRequested.connect(self.describe_model)
        self.library.removeRequested.connect(self.remove_model)
        self.train_panel.runFinished.connect(
            lambda path: self.generate_panel.refresh_models(select=str(path)))

    # -- jobs -------------------------------------------------------------------------------
    def _start_job(self, runner: JobRunner, running_text: str, panel=None) -> bool:
        """Run a job; ``panel`` (default: the Generate panel) shows its progress."""
        if self.runner is not None and self.runner.is_running():
            QMessageBox.information(self, "Busy", "Another job is running; cancel it first.")
            return False
        panel = panel or self.generate_panel
        self.runner = runner
        runner.progress.connect(panel.show_progress)
        runner.failed.connect(self._job_failed)
        runner.cancelled.connect(lambda: self.statusBar().showMessage("Cancelled.", 5000))
        runner.done.connect(lambda: panel.set_running(False))
        panel.set_running(True)
        self.statusBar().showMessage(running_text)
        runner.start()
        return True

    def show_task(self, panel) -> None:
        self.tasks_dock.show()
        for index in range(self.tasks.count()):
            if self.tasks.widget(index).widget() is panel:
                self.tasks.setCurrentIndex(index)

    # -- first run ----------------------------------------------------------------------------
    def maybe_show_welcome(self) -> None:
        """At start-up: the welcome window while no model of the user's own is installed,
        unless turned off. The bundled demo does not count: the Generate tab opens on it, and
        the welcome says what it is (phantoms, not clinical) and how to get the paper's."""
        from cxrgan_desktop.store import zoo

        if self.settings.show_welcome and not zoo.user_models():
            self.show_welcome()

    def show_welcome(self):
        from cxrgan_desktop.gui.shell.welcome import WelcomeDialog

        dialog = WelcomeDialog(self.settings.show_welcome, self)
        dialog.installed.connect(self._model_installed)
        dialog.trainRequested.connect(lambda: self.show_task(self.train_panel))
        dialog.show_at_start.toggled.connect(
            lambda on: setattr(self.settings, "show_welcome", on))
        dialog.setModal(False)  # the window behind stays usable: open a file, look around
        dialog.show()
        self.welcome = dialog
        return dialog

    def refresh_model_lists(self) -> None:
        """Reread the models and classifiers folders into every list that shows them (the
        selections are kept where the files still exist)."""
        self.generate_panel.refresh_models()
        self.library.refresh()
        self.lco_panel.refresh_classifiers()
        self.fid_panel.real.refresh_models()
        self.fid_panel.fake.refresh_models()
        self._update_model_label()

    def _model_installed(self, installed) -> None:
        self.generate_panel.refresh_models(select=str(installed.path))
        self.library.refresh()
        self._update_model_label()
        self.statusBar().showMessage(f"Installed {installed.name}", 8000)

    def show_tstr_panel(self) -> None:
        self.show_task(self.tstr_panel)

    def show_fid_panel(self) -> None:
        self.show_task(self.fid_panel)

    def show_study_panel(self) -> None:
        self.show_task(self.study_panel)

    def cancel_job(self) -> None:
        if self.runner is not None and self.runner.is_running():
            self.runner.cancel()
            self.statusBar().showMessage("Cancelling after the current batch…")

    def _job_failed(self, message: str) -> None:
        self.statusBar().showMessage("Failed.", 5000)
        QMessageBox.critical(self, "cxrgan-desktop", message)

    def _load_model(self, path: str):
        """Load (or reuse) a model; runs inside the worker thread."""
        from cxrgan_desktop.engine.checkpoints import load_generator

        mtime = Path(path).stat().st_mtime
        if self._model_cache and self._model_cache[:2] == (path, mtime):
            return self._model_cache[2]
        model = load_generator(path)
        self._model_cache = (path, mtime, model)
        return model

    def start_generate(self, request: GenerateRequest) -> None:
        from cxrgan_desktop.tasks.generate import existing_run

        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = paths.data_dir() / "sessions" / f"{stamp}-seed{request.seed}"
        earlier = existing_run(out_dir)  # the same second and seed: ask, never mix runs
        if earlier is not None and QMessageBox.question(
                self, "Generate", f"{earlier}.\n\nOverwrite it?"
        ) != QMessageBox.StandardButton.Yes:
            return
        overwrite = earlier is not None

        def job(progress, cancel):
            from cxrgan_desktop.engine.devices import resolve_device
            from cxrgan_desktop.tasks.generate import generate_to_folder

            model = self._load_model(request.model)
            device = resolve_device(request.device)
            return generate_to_folder(
                model, out_dir, n=request.count, seed=request.seed,
                batch_size=request.batch_size, device=str(device), overwrite=overwrite,
                progress=progress, cancel=cancel, on_image=lambda i, image, path: runner.emit_item(
                    (i, image, path, request.seed, model.name, model.sha256)))

        runner = JobRunner(job, "generate")
        runner.item.connect(self._add_generated)
        runner.succeeded.connect(lambda result: self.statusBar().showMessage(
            f"Generated {len(result.files)} images in {result.out_dir}"))
        self.generate_panel.store_settings(self.settings)
        self._start_job(runner, f"Generating {request.count} images (seed {request.seed})…")

    def start_lco(self, request: LCOPanelRequest) -> None:
        from cxrgan_desktop.gui.panels import lco_controller as lco_session

        model_path = self.generate_panel.model_box.currentData()
        if not model_path:
            QMessageBox.information(self, "Synthesise", "Choose or open a generator in the "
                                    "Generate tab first.")
            return
        out_dir = lco_session.session_folder(request)
        job = lco_session.make_job(request, model_path, self._load_model, out_dir,
                                   lambda item: runner.emit_item(item))
        runner = JobRunner(job, "lco")
        runner.item.connect(self._lco_item)
        runner.succeeded.connect(self.lco_panel.show_summary)
        runner.succeeded.connect(lambda summary: self.statusBar().showMessage(
            f"LCO: {summary.accepted} of {summary.requested} accepted"
            + ("" if summary.judge_agreement is None else
               f", judge agrees on {100 * summary.judge_agreement:.0f} %")
            + f"; archive in {summary.out_dir}"))
        self.lco_panel.store_settings(self.settings.lco)
        self._last_snapshot = 0.0
        wanted = " + ".join(request.present) or "-"
        self._start_job(runner, f"Synthesising {request.count} images: {wanted}"
                        + (f", no {', no '.join(request.absent)}" if request.absent else "")
                        + "…", panel=self.lco_panel)

    def _lco_item(self, item) -> None:
        import time

        from cxrgan_desktop.gui.panels import lco_controller as lco_session

        if isinstance(item, lco_session.LCOSnapshot):
            now = time.monotonic()
            if now - self._last_snapshot >= 0.1:  # watch, at most 10 per s
                self._last_snapshot = now
                self.viewer.set_image(item.image, reset_view=False)
                self.lco_panel.bars.set_rows(item.rows, f"optimising: {item.text}")
        elif item.entry is not None:
            self.gallery.add_entry(item.entry, item.image, select=self.gallery.count() == 0)

    def _add_generated(self, item) -> None:
        index, image, path, seed, model_name, model_sha256 = item
        entry = GalleryEntry(Path(path), f"seed {seed} #{index}",
                             {"seed": seed, "index": index, "model_name": model_name,
                              "model_sha256": model_sha256})
        self.gallery.add_entry(entry, image, select=index == 0)
        self._update_model_label()

    def open_images(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open images",
                                                self.settings.last_open_folder, IMAGE_FILTER)
        if files:
            self.settings.last_open_folder = str(Path(files[0]).parent)
            self.load_image_files([Path(f) for f in files])

    def load_image_files(self, files: list[Path]) -> None:
        """Open files and folders (Ctrl+O, drop, command line) in a worker: every readable
        image goes to the gallery as it is decoded; every other file is collected with its
        reason and shown in one dialog at the end, so one bad file never stops the rest."""
        def job(progress, cancel):
            from cxrgan_desktop.imaging.readers import Skipped, scan_images

            opened, skipped, notes = 0, [], []
            for result in scan_images(files, progress, cancel):
                if isinstance(result, Skipped):
                    skipped.append(result)
                else:
                    opened += 1
                    notes += [Skipped(result.source, note) for note in result.warnings]
                    runner.emit_item(result)
            return opened, skipped, notes

        runner = JobRunner(job, "open images")
        runner.item.connect(self._add_loaded)
        runner.succeeded.connect(self._report_skipped)
        self._start_job(runner, f"Reading {len(files)} file(s)…")

    def _add_loaded(self, image) -> None:
        from cxrgan_desktop.imaging.readers import display_path

        self.gallery.add_entry(GalleryEntry(image.source, display_path(image.source.name),
                                            {"normalisation": image.normalisation}),
                               image.pixels, select=True)

    def _report_skipped(self, outcome) -> None:
        """One message for the whole Open: the files that did not open, and what the
        reader noted about those that did (an MR is not a radiograph, say), as the CLI
        prints them."""
        opened, skipped, notes = outcome
        parts = [skipped_files_text(opened, skipped)] if skipped else []
        if notes:
            parts.append("Opened with a note:\n\n" + "\n".join(
                f"{item.shown}: {item.reason}" for item in notes[:MAX_LISTED_SKIPS]))
        if parts:
            QMessageBox.warning(self, "Some files were not opened" if skipped else
                                "Notes on the opened images", "\n\n".join(parts))
        else:
            self.statusBar().showMessage(f"Opened {opened} image(s).", 5000)

    def show_entry(self, entry: GalleryEntry) -> None:
        from cxrgan_desktop.imaging.display import display_info
        from cxrgan_desktop.imaging.readers import ImageReadError, read_image

        try:
            image = read_image(entry.path)
        except ImageReadError as error:
            QMessageBox.warning(self, "Cannot show image", str(error))
            return
        self.viewer.show_image(image.pixels, display_info(image, entry.details))
        if "lco" in entry.details:
            from cxrgan_desktop.gui.panels.lco_controller import probability_rows

            self.lco_panel.bars.set_rows(probability_rows(entry), entry.title)
        self.statusBar().showMessage(f"{entry.title}  ({image.width}x{image.height}, "
                                     f"{image.normalisation})")

    def open_model(self) -> None:
        file, _ = QFileDialog.getOpenFileName(self, "Open a generator",
                                              self.settings.last_open_folder, MODEL_FILTER)
        if file:
            self.open_model_file(file)

    def open_model_file(self, file: str) -> None:
        runner = JobRunner(lambda progress, cancel: self._load_model(file), "open model")
        runner.succeeded.connect(lambda model: self._model_opened(file, model))
        self._start_job(runner, f"Checking {Path(file).name}…")

    def _model_opened(self, file: str, model) -> None:
        self.generate_panel.refresh_models(select=file)
        self.settings.last_model = file
        self._update_model_label()
        self.statusBar().showMessage(f"Opened {model.name}: {model.source_format}, "
                                     f"{model.resolution}x{model.resolution}", 8000)

    def export_selected(self) -> None:
        from cxrgan_desktop.tasks.export import EXPORT_FORMATS, ExportItem, export_items

        entries = self.gallery.selected_entries()
        if not entries:
            QMessageBox.information(self, "Export", "Select images in the gallery first.")
            return
        any_real = any("seed" not in e.details for e in entries)
        formats = [f for f in EXPORT_FORMATS if not (f == "dicom" and any_real)]
        labels = [EXPORT_FORMATS[f] for f in formats]
        label, ok = QInputDialog.getItem(self, f"Export {len(entries)} image(s)", "Format:",
                                         labels, 0, False)
        if not ok:
            return
        folder = QFileDialog.getExistingDirectory(self, "Export to folder",
                                                  self.settings.last_export_folder)
        if not folder:
            return
        self.settings.last_export_folder = folder
        items = [ExportItem(e.path, f"seed{e.details['seed']}_{e.details['index']:05d}",
                            e.details["model_name"], e.details["model_sha256"],
                            e.details["seed"], e.details["index"], e.details.get("lco"))
                 if "seed" in e.details
                 else ExportItem(e.path, e.path.stem) for e in entries]
        image_format = formats[labels.index(label)]
        window, inverted = self.viewer.window(), self.viewer.is_inverted()
        runner = JobRunner(lambda progress, cancel: export_items(
            items, folder, image_format, window, inverted, progress, cancel), "export")
        runner.succeeded.connect(lambda result: self._exported(result, folder))
        self._start_job(runner, f"Exporting {len(items)} image(s)…")

    def _exported(self, result, folder: str) -> None:
        self.statusBar().showMessage(f"Exported {len(result.written)} file(s) to {folder}",
                                     8000)
        if result.skipped:
            QMessageBox.warning(self, "Some images were not exported",
                                skipped_files_text(len(result.written), result.skipped,
                                                   verb="Exported"))

    def describe_model(self, path: Path) -> None:
        from cxrgan_desktop.gui.panels.models import details_html
        from cxrgan_desktop.store.zoo import model_details

        runner = JobRunner(lambda progress, cancel: model_details(path), "describe model",
                           parent=self)
        runner.succeeded.connect(lambda details: self.library.show_details(
            path, details_html(details)))
        runner.failed.connect(lambda message: self.library.show_details(
            path, f"<p>Cannot read {path.name}: {message}</p>"))
        self._describe_runner = runner  # keep it alive; it is independent of the job slot
        runner.start()

    def remove_model(self, path: Path) -> None:
        from cxrgan_desktop.store.zoo import remove_installed

        answer = QMessageBox.question(self, "Remove model",
                                      f"Delete {path.name} from your models folder?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            remove_installed(path)
        except (OSError, ValueError) as error:
            QMessageBox.warning(self, "Not removed", str(error))
            return
        if self._model_cache and self._model_cache[0] == str(path):
            self._model_cache = None
        self.library.refresh()
        self.generate_panel.refresh_models()
        self.statusBar().showMessage(f"Removed {path.name}", 5000)

    def toggle_compare(self) -> None:
        from cxrgan_desktop.imaging.readers import ImageReadError, read_image

        if self.centre.currentWidget() is self.compare:
            self.centre.setCurrentWidget(self.viewer)
            self.viewer.fit()  # the compare view's zoom and pan were its own
            return
        entries = self.gallery.selected_entries()
        if len(entries) != 2:
            QMessageBox.information(self, "Compare", "Select exactly two images in the gallery "
                                    "(Ctrl+click), then compare.")
            return
        try:
            images = [read_image(e.path) for e in entries]
        except ImageReadError as error:
            QMessageBox.warning(self, "Cannot compare", str(error))
            return
        from cxrgan_desktop.imaging.display import display_info

        self.compare.set_images(*(i.pixels for i in images), *(
            display_info(i, e.details) for i, e in zip(images, entries, strict=True)))
        self.compare.left.set_window(self.viewer.window())
        self.centre.setCurrentWidget(self.compare)
        self.statusBar().showMessage(f"Comparing {entries[0].title} | {entries[1].title} "
                                     "(linked zoom, pan and window; C returns)")

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        from cxrgan_desktop.store.zoo import MODEL_SUFFIXES

        files = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        models = [f for f in files if f.suffix.lower() in MODEL_SUFFIXES]
        images = [f for f in files if f not in models]
        if images:
            self.load_image_files(images)
        elif models:
            self.open_model_file(str(models[0]))
        event.acceptProposedAction()

    # -- status and chrome ------------------------------------------------------------------
    def _update_model_label(self, *_args) -> None:
        name = self.generate_panel.model_box.currentText()
        self.model_label.setText(f"model: {name}" if name else "no model")

    def _probe_devices(self) -> JobRunner:
        def job(progress, cancel):
            import torch

            from cxrgan_desktop.engine.devices import describe_device, resolve_device

            available = {"cuda": torch.cuda.is_available(),
                         "mps": bool(getattr(torch.backends, "mps", None)
                                     and torch.backends.mps.is_available())}
            return available, describe_device(resolve_device("auto"))

        runner = JobRunner(job, "probe devices", parent=self)
        runner.succeeded.connect(self._devices_probed)
        runner.start()
        return runner

    def _devices_probed(self, result) -> None:
        available, description = result
        for name, ok in available.items():
            self.generate_panel.set_device_available(name, ok)
        self.device_label.setText(f"device: {description}")

    def _show_pixel(self, x: int, y: int, value: float) -> None:
        self.pixel_label.setText(self.viewer.readout(x, y, value))  # the image's units

    def _toggle_invert(self) -> None:
        self.settings.viewer.invert = not self.settings.viewer.invert
        self.viewer.set_inverted(self.settings.viewer.invert)

    def _toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", help_texts.shortcuts_html())

    def show_about(self) -> None:
        QMessageBox.about(self, "About cxrgan-desktop", help_texts.about_html(__version__))

    def _restore_geometry(self) -> None:
        if self.settings.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(self.settings.window_geometry.encode()))
        if self.settings.window_state:
            self.restoreState(QByteArray.fromBase64(self.settings.window_state.encode()))
        self.apply_viewer_preferences()

    def apply_viewer_preferences(self) -> None:
        prefs = to_viewer_preferences(self.settings.viewer)
        self.viewer.set_preferences(prefs)
        self.compare.set_preferences(prefs)
        self.viewer.set_inverted(self.settings.viewer.invert)

    def edit_preferences(self) -> None:
        dialog = PreferencesDialog(self.settings.viewer, self)
        if dialog.exec():
            self.settings.viewer = dialog.preferences(invert=self.settings.viewer.invert)
            self.apply_viewer_preferences()
            save_settings(self.settings)

    def closeEvent(self, event) -> None:
        for runner in (self.runner, self._device_probe, getattr(self, "_describe_runner", None)):
            if runner is not None and runner.is_running():
                runner.cancel()
                runner.wait(10_000)
        self.train_panel.shutdown()
        if self.tstr_panel.is_running():
            self.tstr_panel.cancel()  # finished arms are kept; the next run continues
            self.tstr_panel.runner.wait(30_000)
        self.tstr_panel.store_preferences()
        self.generate_panel.store_settings(self.settings)
        self.lco_panel.store_settings(self.settings.lco)
        self.fid.store_settings()
        self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode()
        self.settings.window_state = bytes(self.saveState().toBase64()).decode()
        save_settings(self.settings)
        super().closeEvent(event)

