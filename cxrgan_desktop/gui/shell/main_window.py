"""The main window: the viewer in the centre, task panels in a dock, the session gallery
below, and a status bar with the model, the device and the pixel under the cursor.

The window keeps the layout and the wiring. The work lives in controllers that emit signals:
:class:`GenerateController` (Generate, Open model, the device probe), :class:`LCOController`
(Synthesise), :class:`ImageSession` (Open, and reading the chosen image for the viewer and
Compare), :class:`ExportController` (Ctrl+E), :class:`ModelsController` (the Models tab) and
:class:`FIDController`. Long jobs share one :class:`JobSlot`; models one :class:`ModelCache`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QTabWidget,
)

from cxrgan_desktop import __version__
from cxrgan_desktop.core import paths
from cxrgan_desktop.core.settings import Settings, load_settings, save_settings
from cxrgan_desktop.gui.jobs.model_cache import ModelCache
from cxrgan_desktop.gui.jobs.slot import JobSlot, ProgressPanel
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.gui.panels.audit import AuditPanel
from cxrgan_desktop.gui.panels.audit_controller import AuditController
from cxrgan_desktop.gui.panels.fid import FIDPanel
from cxrgan_desktop.gui.panels.fid_controller import FIDController
from cxrgan_desktop.gui.panels.findings import FindingsPanel
from cxrgan_desktop.gui.panels.findings_controller import FindingsController
from cxrgan_desktop.gui.panels.findings_menu import latent_menu
from cxrgan_desktop.gui.panels.findings_projection import ProjectionController
from cxrgan_desktop.gui.panels.generate import GeneratePanel
from cxrgan_desktop.gui.panels.generate_controller import GenerateController
from cxrgan_desktop.gui.panels.lco import LCOPanel
from cxrgan_desktop.gui.panels.lco_controller import LCOController
from cxrgan_desktop.gui.panels.models import ModelLibrary
from cxrgan_desktop.gui.panels.models_controller import ModelsController
from cxrgan_desktop.gui.panels.study import StudyPanel
from cxrgan_desktop.gui.panels.train import TrainPanel
from cxrgan_desktop.gui.panels.tstr import TSTRPanel
from cxrgan_desktop.gui.shell import help_texts
from cxrgan_desktop.gui.shell.centre import CentreStack
from cxrgan_desktop.gui.shell.export_controller import ExportController
from cxrgan_desktop.gui.shell.image_session import ImageSession
from cxrgan_desktop.gui.shell.menus import build_menus
from cxrgan_desktop.gui.shell.model_watcher import ModelFolderWatcher
from cxrgan_desktop.gui.shell.preferences import PreferencesDialog, to_viewer_preferences
from cxrgan_desktop.gui.viewer.gallery import Gallery
from cxrgan_desktop.gui.viewer.pair import PairView
from cxrgan_desktop.gui.viewer.viewer import CompareView, ImageViewer


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

        self.viewer = ImageViewer()
        self.compare = CompareView()
        self.centre = CentreStack()
        self.centre.add_page(self.viewer)
        self.centre.add_wide_page(self.compare)
        self.audit_pair = PairView()  # an Audit tab row: synthetic | training | difference
        self.centre.add_wide_page(self.audit_pair)
        self.projection_pair = PairView()  # Find in latent space: original | reconstruction
        self.centre.add_wide_page(self.projection_pair)
        self.setCentralWidget(self.centre)
        self.setAcceptDrops(True)
        self.generate_panel = GeneratePanel()
        self.library = ModelLibrary()
        self.tasks = QTabWidget()
        self.train_panel = TrainPanel()
        self.lco_panel = LCOPanel()
        self.findings_panel = FindingsPanel()
        self.fid_panel = FIDPanel()
        self.study_panel = StudyPanel(self.settings)
        self.tstr_panel = TSTRPanel(self.settings.tstr, self.settings.device)
        self.audit_panel = AuditPanel()
        for panel, title in ((self.generate_panel, "Generate"), (self.lco_panel, "Synthesise"),
                             (self.findings_panel, "Findings"),
                             (self.train_panel, "Train"), (self.fid_panel, "FID"),
                             (self.study_panel, "Study"), (self.tstr_panel, "TSTR"),
                             (self.audit_panel, "Audit"), (self.library, "Models")):
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

        self._make_controllers()
        build_menus(self)
        self._connect()
        self.generate_panel.load_settings(self.settings)
        self.lco_panel.load_settings(self.settings.lco)
        self.findings_panel.load_settings(self.settings.explore)
        self.fid = FIDController(self, self.fid_panel, self.settings)
        self.audit = AuditController(self, self.audit_panel, self.audit_pair, self.settings)
        self.audit.pairShown.connect(lambda: self.centre.setCurrentWidget(self.audit_pair))
        self.images.shown.connect(self._leave_audit_pair)
        from cxrgan_desktop.engine.classifier.installed import classifiers_dir

        # models and classifiers installed from the command line while the window is open
        self.model_watcher = ModelFolderWatcher([paths.models_dir(), classifiers_dir()], self)
        self.model_watcher.changed.connect(self.refresh_model_lists)
        self._restore_geometry()
        self._update_model_label()
        self.statusBar().showMessage("Ready. Open an image (Ctrl+O) or generate (Ctrl+G).")
        self._device_probe = self.generate.probe_devices()  # imports torch off the GUI thread

    # -- layout -----------------------------------------------------------------------------
    def _dock(self, title: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _make_controllers(self) -> None:
        self.jobs = JobSlot(self)
        self.model_cache = ModelCache()
        self.generate = GenerateController(self.jobs, self.generate_panel, self.settings,
                                           self.model_cache, self)
        self.lco = LCOController(self.jobs, self.lco_panel, self.settings, self.model_cache,
                                 self.generate_panel.model_box.currentData, self)
        self.images = ImageSession(self.jobs, self.gallery, self.viewer, self.compare,
                                   self.centre, self.generate_panel, self.settings, self)
        self.exporter = ExportController(self.jobs, self.gallery, self.viewer,
                                         self.generate_panel, self.settings, self)
        self.models_tab = ModelsController(self.library, self.model_cache, self)
        self.findings = FindingsController(self.jobs, self.findings_panel, self.viewer,
                                           self.gallery, self.settings, self.model_cache, self)
        self.projection = ProjectionController(
            self.jobs, self.findings_panel, self.settings, self.model_cache,
            self.generate_panel.model_box.currentData, self.projection_pair, self.centre, self)

    def _connect(self) -> None:
        self.jobs.failed.connect(lambda message: QMessageBox.critical(
            self, "cxrgan-desktop", message))
        self.jobs.refused.connect(lambda: QMessageBox.information(
            self, "Busy", "Another job is running; cancel it first."))
        for controller in (self.jobs, self.generate, self.lco, self.images, self.exporter,
                           self.models_tab, self.findings, self.projection):
            controller.status.connect(self._show_status)
        for controller in (self.generate, self.lco, self.images, self.projection):
            controller.itemReady.connect(self.gallery.add_item)
        self.projection.finished.connect(lambda _done, entry: self.findings.explore(entry))
        self.findings.showViewer.connect(lambda: self.centre.setCurrentWidget(self.viewer))
        self.gallery.entryActivated.connect(self._follow_findings)
        self.gallery.model().rowsInserted.connect(
            lambda *_args: self.findings.refresh_morph_ends())
        self.viewer.contextMenuRequested.connect(
            lambda where: self.show_latent_menu(self.images.current, where))
        self.gallery.entryContextMenu.connect(self.show_latent_menu)
        self.generate.modelOpened.connect(self._update_model_label)
        self.generate.deviceDescribed.connect(
            lambda text: self.device_label.setText(f"device: {text}"))
        self.lco.preview.connect(lambda image: self.viewer.set_image(image, reset_view=False))
        self.gallery.entryActivated.connect(self.lco.show_bars)
        self.gallery.entryActivated.connect(self.images.show_entry)
        self.models_tab.removed.connect(lambda _path: self.generate_panel.refresh_models())
        self.viewer.pixelHovered.connect(self._show_pixel)
        self.viewer.hoverLeft.connect(lambda: self.pixel_label.setText(""))
        self.generate_panel.model_box.currentIndexChanged.connect(self._update_model_label)
        self.train_panel.runFinished.connect(
            lambda path: self.generate_panel.refresh_models(select=str(path)))

    def _leave_audit_pair(self, *_args) -> None:
        """A gallery image chosen while an audit (or projection) pair is on screen: show the
        viewer."""
        if self.centre.currentWidget() in (self.audit_pair, self.projection_pair):
            self.centre.setCurrentWidget(self.viewer)

    # -- latent space: Findings, morphs, projection ------------------------------------------
    def _findings_tab_open(self) -> bool:
        return self.tasks.currentWidget().widget() is self.findings_panel

    def _follow_findings(self, entry) -> None:
        """With the Findings tab open, the sliders follow the gallery's choice."""
        if self._findings_tab_open():
            self.findings.explore(entry)

    def explore_findings(self) -> None:
        """Image > Explore findings: the Findings tab, on the gallery's chosen image."""
        self.show_task(self.findings_panel)
        self.findings.explore(self.gallery.current_entry())

    def find_in_latent_space(self, entry=None) -> None:
        """Project the chosen opened image; the Findings tab shows the progress and Cancel."""
        self.show_task(self.findings_panel)
        self.projection.find_in_latent_space(entry or self.gallery.current_entry())

    def show_latent_menu(self, entry, where) -> None:
        """Right click on an image (viewer or gallery): Find in latent space, Explore
        findings, Morph to."""
        if entry is not None:
            self.latent_menu = latent_menu(self, entry)
            self.latent_menu.popup(where)

    def _show_status(self, message: str, milliseconds: int) -> None:
        self.statusBar().showMessage(message, milliseconds)

    # -- jobs (the FID controller and tests reach the slot through these) --------------------
    @property
    def runner(self) -> JobRunner | None:
        """The job in the slot (running or last run)."""
        return self.jobs.runner

    def _start_job(self, runner: JobRunner, running_text: str,
                   panel: ProgressPanel | None = None) -> bool:
        """Run a job; ``panel`` (default: the Generate panel) shows its progress."""
        return self.jobs.start(runner, running_text, panel or self.generate_panel)

    def cancel_job(self) -> None:
        self.jobs.cancel()

    def load_image_files(self, files: list[Path]) -> None:
        """Open files and folders (the command line, a drop) into the gallery."""
        self.images.load_image_files(files)

    def export_selected(self) -> None:
        self.exporter.export_selected()

    def toggle_compare(self) -> None:
        self.images.toggle_compare()

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
        self.findings_panel.refresh_classifiers()
        self.fid_panel.real.refresh_models()
        self.fid_panel.fake.refresh_models()
        self.audit_panel.refresh_models()
        self._update_model_label()

    def _model_installed(self, installed) -> None:
        self.generate_panel.refresh_models(select=str(installed.path))
        self.library.refresh()
        self._update_model_label()
        self.statusBar().showMessage(f"Installed {installed.name}", 8000)

    def show_tstr_panel(self) -> None:
        self.show_task(self.tstr_panel)

    def show_audit_panel(self) -> None:
        self.show_task(self.audit_panel)

    def show_fid_panel(self) -> None:
        self.show_task(self.fid_panel)

    def show_study_panel(self) -> None:
        self.show_task(self.study_panel)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        from cxrgan_desktop.store.zoo import MODEL_SUFFIXES

        files = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        models = [f for f in files if f.suffix.lower() in MODEL_SUFFIXES]
        images = [f for f in files if f not in models]
        if images:
            self.images.load_image_files(images)
        elif models:
            self.generate.open_model_file(str(models[0]))
        event.acceptProposedAction()

    # -- status and chrome ------------------------------------------------------------------
    def _update_model_label(self, *_args) -> None:
        name = self.generate_panel.model_box.currentText()
        self.model_label.setText(f"model: {name}" if name else "no model")

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
        else:  # first start: every task's tab in sight (the nine would scroll at the default)
            QTimer.singleShot(0, self._widen_tasks_to_their_tabs)
        self.apply_viewer_preferences()

    def _widen_tasks_to_their_tabs(self) -> None:
        """Once laid out (a dock resized before it is shown keeps its default width)."""
        bar = self.tasks.tabBar()
        tabs = sum(bar.tabSizeHint(i).width() for i in range(bar.count())) + 12
        self.resizeDocks([self.tasks_dock], [min(tabs, int(self.width() * 0.45))],
                         Qt.Orientation.Horizontal)

    def apply_viewer_preferences(self) -> None:
        prefs = to_viewer_preferences(self.settings.viewer)
        self.viewer.set_preferences(prefs)
        self.compare.set_preferences(prefs)
        self.audit_pair.set_preferences(prefs)
        self.projection_pair.set_preferences(prefs)
        self.viewer.set_inverted(self.settings.viewer.invert)

    def edit_preferences(self) -> None:
        dialog = PreferencesDialog(self.settings.viewer, self)
        if dialog.exec():
            self.settings.viewer = dialog.preferences(invert=self.settings.viewer.invert)
            self.apply_viewer_preferences()
            save_settings(self.settings)

    def closeEvent(self, event) -> None:
        self.jobs.shutdown()
        if self._device_probe.is_running():
            self._device_probe.wait(10_000)
        self.models_tab.shutdown()
        self.images.shutdown()
        self.findings.shutdown()
        self.audit.shutdown()
        self.train_panel.shutdown()
        if self.tstr_panel.is_running():
            self.tstr_panel.cancel()  # finished arms are kept; the next run continues
            self.tstr_panel.runner.wait(30_000)
        self.tstr_panel.store_preferences()
        self.generate_panel.store_settings(self.settings)
        self.lco_panel.store_settings(self.settings.lco)
        self.findings_panel.store_settings(self.settings.explore)
        self.fid.store_settings()
        self.audit.store_settings()
        self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode()
        self.settings.window_state = bytes(self.saveState().toBase64()).decode()
        save_settings(self.settings)
        super().closeEvent(event)
