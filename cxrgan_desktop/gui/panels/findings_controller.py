"""The Findings tab's work: preparing an image's slider directions, rendering slider
positions (a quick preview while dragging, full size on release), each finding's
probability path for the plot, and exporting frame sets in the window's job slot.

Slider work goes through :class:`LatestOnly` loaders, so a fast drag renders at most the
newest position and the viewer ends on the last one. The directions are taken once per
image (:func:`~cxrgan_desktop.engine.latent_shift.finding_directions`, one backward pass per
finding), after which a slider position costs one render
(:func:`~cxrgan_desktop.engine.latent_shift.combine_shifts`): one slider alone gives exactly
the frame :func:`~cxrgan_desktop.engine.latent_shift.shift_path` renders at that lambda.

The worker functions are in :mod:`findings_work` (they hold one lock around torch work,
see there), the export jobs in :mod:`findings_export`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.jobs.latest import LatestOnly
from cxrgan_desktop.gui.jobs.model_cache import ModelCache
from cxrgan_desktop.gui.jobs.slot import JobSlot
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.gui.panels.findings import FindingsPanel
from cxrgan_desktop.gui.panels.findings_export import morph_export_job, shift_export_job
from cxrgan_desktop.gui.panels.findings_work import (
    Prepared,
    Subject,
    morph_path,
    path_lambdas,
    prepare,
    render_shift,
    shift_curve,
    subject_of,
)
from cxrgan_desktop.gui.viewer.gallery import Gallery, GalleryEntry
from cxrgan_desktop.gui.viewer.pair import DIFFERENCE_UNITS, difference_window
from cxrgan_desktop.gui.viewer.viewer import ImageViewer
from cxrgan_desktop.imaging.display import DisplayInfo, NamedWindow


class FindingsController(QObject):
    """Wires the Findings panel to the gallery, the viewer and the window's job slot."""

    status = Signal(str, int)  # message, milliseconds (0: until replaced)
    showViewer = Signal()  # the viewer should be on screen (not a pair view)
    prepared = Signal(object)  # Prepared: sliders are ready
    rendered = Signal(object, bool)  # image [R, R] in [0, 1] now in the viewer, quick
    curveReady = Signal(object)  # the ShiftPath or LatentPath now in the plot
    exported = Signal(object)  # FrameSetResult

    def __init__(self, slot: JobSlot, panel: FindingsPanel, viewer: ImageViewer,
                 gallery: Gallery, settings: Settings, cache: ModelCache,
                 dialog_parent: QWidget) -> None:
        super().__init__(dialog_parent)
        self.slot, self.panel, self.viewer, self.gallery = slot, panel, viewer, gallery
        self.settings, self.cache, self.dialog_parent = settings, cache, dialog_parent
        self.state: Prepared | None = None
        self.current: np.ndarray | None = None  # the image in the viewer, [R, R] in [0, 1]
        self.active: str | None = None  # the finding whose path the plot shows
        self.curves: dict[tuple[str, float, int], Any] = {}
        self.morph: Any = None  # LatentPath of the chosen morph
        self.morph_subject: Subject | None = None
        self.preparer = LatestOnly("prepare findings", self)
        self.preparer.ready.connect(self._prepared)
        self.preparer.failed.connect(self._failed)
        self.renders = LatestOnly("render slider position", self)
        self.renders.ready.connect(self._rendered)
        self.renders.failed.connect(self._failed)
        self.paths = LatestOnly("finding path", self)
        self.paths.ready.connect(self._path_ready)
        self.paths.failed.connect(self._failed)
        panel.sliderMoved.connect(self.slider_moved)
        panel.differenceToggled.connect(lambda _on: self._show(reset=True))
        panel.resetRequested.connect(self.reset)
        panel.classifierChanged.connect(self._reprepare)
        panel.rangeChanged.connect(self._request_curve)
        panel.frames.valueChanged.connect(lambda _v: self._request_curve())
        panel.exportShiftRequested.connect(self.export_shift)
        panel.morphEndChosen.connect(self.choose_morph_end)
        panel.morphMoved.connect(self.show_morph_frame)
        panel.exportMorphRequested.connect(self.export_morph)
        panel.cancelRequested.connect(slot.cancel)

    # -- the image explored -------------------------------------------------------------------
    def explore(self, entry: GalleryEntry | None) -> bool:
        """Make ``entry`` the start of the sliders (in a worker); False when its latent is
        unknown."""
        subject = subject_of(entry)
        self.refresh_morph_ends()
        if subject is None:
            self.state = None
            self.panel.set_ready(False, (
                f"{entry.title}: " if entry is not None else "") + "not an image with a known "
                "latent. Generate one, or right-click an opened radiograph and choose Find in "
                "latent space.")
            return False
        classifier = self.panel.classifier()
        if not classifier:
            self.panel.set_ready(False, "No classifier installed: train one ('cxrgan classifier "
                                 "train') or install one; the bundled demo's comes with the "
                                 "demo model.")
            return False
        self.state = None
        self.panel.set_ready(False, f"Preparing {subject.title}: one direction per finding…")
        self.preparer.request(partial(prepare, subject, classifier, self.cache.get,
                                      self.panel.preview(), self.settings.device), subject)
        return True

    def _reprepare(self) -> None:
        if self.state is not None:
            self.explore(self.state.subject.entry)

    def _prepared(self, subject: Subject, state: Prepared) -> None:
        self.state, self.active, self.curves, self.morph = state, None, {}, None
        self.panel.set_findings(state.labels)
        self.panel.set_morph_frames(0)
        psi = "" if subject.truncation == 1.0 else f", truncation psi {subject.truncation:g}"
        self.panel.set_ready(True, f"<b>{subject.title}</b> ({state.model.name}, "
                             f"{state.model.resolution} px{psi}), findings of "
                             f"{state.classifier.name}. Synthetic: every frame is.")
        self.panel.plot.clear_curves("move a slider: its path's probabilities appear here")
        self.current = state.start
        self._show(reset=False)  # shown when the viewer is (a projection's pair may be up)
        self.prepared.emit(state)

    def _failed(self, _context: Any, message: str) -> None:
        self.panel.status.setText(message)
        self.status.emit(f"Findings: {message}", 8000)

    # -- sliders ------------------------------------------------------------------------------
    def slider_moved(self, finding: str, degrees: float, final: bool) -> None:
        if self.state is None:
            return
        lambdas = self.panel.values()
        quick = not final
        self.renders.request(partial(render_shift, self.state, lambdas, quick), quick)
        if finding != self.active:
            self.active = finding
            self._request_curve()
        elif self._curve_key() in self.curves:
            self.panel.plot.set_marker(degrees)

    def reset(self) -> None:
        if self.state is not None:
            self.panel.reset_sliders()
            self.renders.drop()
            self.current = self.state.start
            self._show(reset=False)
            self.panel.plot.set_marker(0.0)

    def _rendered(self, quick: bool, image: np.ndarray) -> None:
        self.current = image
        self._show(reset=False)
        self.showViewer.emit()
        self.rendered.emit(image, quick)

    def _show(self, reset: bool) -> None:
        """The current image, or its difference from the start, in the viewer."""
        if self.current is None or self.state is None:
            return
        if not self.panel.difference.isChecked():
            self.viewer.set_image(self.current, reset_view=reset)
            return
        difference = (self.current.astype(np.float32) - self.state.start).astype(np.float32)
        window = NamedWindow("Difference, centred at 0", difference_window(difference))
        info = DisplayInfo(DIFFERENCE_UNITS, (window,), ("now − start",))
        self.viewer.set_image((difference + 1.0) / 2.0, reset_view=reset, info=info)

    # -- the probability plot -----------------------------------------------------------------
    def _curve_key(self) -> tuple[str, float, int]:
        return (self.active or "", self.panel.range_deg(), self.panel.frames.value())

    def _request_curve(self) -> None:
        if self.state is None or self.active is None:
            return
        key = self._curve_key()
        if key in self.curves:
            self._plot_shift(self.curves[key])
            return
        self.paths.request(partial(shift_curve, self.state, key[0], key[1], key[2]),
                           ("shift", key, self.state))

    def _path_ready(self, context: tuple, path: Any) -> None:
        kind, key, state = context
        if state is not self.state:
            return  # made for an earlier image
        if kind == "shift":
            self.curves[key] = path
            if key == self._curve_key():
                self._plot_shift(path)
        else:
            self.morph = path
            self.panel.set_morph_frames(len(path.frames))
            self.panel.set_ready(True)
            self.panel.show_path(path.positions, path.probabilities, path.labels,
                                 self.active or "", "t (morph)",
                                 f"morph to {key.title}: probabilities along t")
            self.show_morph_frame(0)
            self.curveReady.emit(path)

    def _plot_shift(self, path: Any) -> None:
        self.panel.show_path(path.positions, path.probabilities, path.labels, path.finding,
                             "lambda (degrees towards the finding)",
                             f"{path.finding}: every finding's probability along its path")
        self.panel.plot.set_marker(self.panel.values().get(path.finding, 0.0))
        self.curveReady.emit(path)

    # -- morph --------------------------------------------------------------------------------
    def refresh_morph_ends(self) -> None:
        start = self.state.subject.entry if self.state is not None else None
        rows = [(row, entry.title) for row, entry in enumerate(self.gallery.entries())
                if subject_of(entry) is not None and entry is not start]
        self.panel.set_morph_ends(rows)

    def morph_to(self, entry: GalleryEntry) -> None:
        """Morph the explored image into ``entry`` (the gallery's context menu)."""
        row = next((k for k, e in enumerate(self.gallery.entries()) if e is entry), -1)
        self.refresh_morph_ends()
        self.panel.morph_end.setCurrentIndex(max(self.panel.morph_end.findData(row), 0))
        self.choose_morph_end(row)

    def choose_morph_end(self, row: int) -> None:
        if self.state is None or row < 0:
            return
        end = subject_of(self.gallery.entries()[row])
        if end is None:
            return
        sha = self.state.subject.entry.details.get("model_sha256")
        if end.entry.details.get("model_sha256") != sha:
            QMessageBox.information(self.dialog_parent, "Morph", f"{end.title} was made by "
                                    "another model: a morph needs two latents of one model.")
            return
        self.morph_subject = end
        self.paths.request(partial(morph_path, self.state, end.latent,
                                   self.panel.frames.value()), ("morph", end, self.state))
        psi = self.state.subject.truncation
        other = "" if end.truncation == psi else (
            f" at psi {psi:g}, the start's ({end.title} was made at psi {end.truncation:g}: "
            "the last frame is its latent at the start's psi)")
        self.status.emit(f"Morphing {self.state.subject.title} into {end.title}{other}…", 0)

    def show_morph_frame(self, frame: int) -> None:
        if self.morph is None or not 0 <= frame < len(self.morph.frames):
            return
        shown = self.morph.frames[frame]
        self.panel.morph_t.setText(f"t = {shown.position:.2f}")
        self.panel.plot.set_marker(shown.position)
        self.current = shown.image
        self._show(reset=False)
        self.showViewer.emit()
        self.rendered.emit(shown.image, False)

    # -- exports ------------------------------------------------------------------------------
    def _folder(self, title: str) -> tuple[Path, bool] | None:
        """The folder chosen, and whether to overwrite an earlier frame set in it."""
        from cxrgan_desktop.tasks.latent_frames import earlier_frame_set

        folder = QFileDialog.getExistingDirectory(self.dialog_parent, title,
                                                  self.settings.last_export_folder)
        if not folder:
            return None
        self.settings.last_export_folder = folder
        earlier = earlier_frame_set(folder)
        if earlier and QMessageBox.question(
                self.dialog_parent, title, f"{folder} holds an earlier frame set "
                f"({len(earlier)} files). Replace it?") != QMessageBox.StandardButton.Yes:
            return None
        return Path(folder), bool(earlier)

    def export_shift(self) -> None:
        """The active finding's path over the slider range as a frame set, in the job slot."""
        state = self.state
        if state is None:
            return
        finding = self.active or state.labels[0]
        chosen = self._folder(f"Export the {finding} frames to a folder")
        if chosen is not None:
            lambdas = path_lambdas(self.panel.range_deg(), self.panel.frames.value())
            self._start_export(shift_export_job(state, finding, lambdas, *chosen),
                               f"Exporting {len(lambdas)} frames of {finding}…")

    def export_morph(self) -> None:
        """The morph on screen (its frame count) as a frame set, in the job slot."""
        state, end = self.state, self.morph_subject
        if state is None or end is None or self.morph is None:
            return
        chosen = self._folder("Export the morph to a folder")
        if chosen is not None:
            frames = len(self.morph.frames)
            self._start_export(morph_export_job(state, end, frames, *chosen),
                               f"Exporting the morph ({frames} frames)…")

    def _start_export(self, job: Any, text: str) -> None:
        runner = JobRunner(job, "export frames")
        runner.succeeded.connect(self._exported)
        self.slot.start(runner, text, self.panel)

    def _exported(self, result: Any) -> None:
        self.panel.status.setText(f"Wrote {len(result.files)} files to {result.out_dir} "
                                  "(synthetic, marked so in every file)")
        self.status.emit(f"Exported frames to {result.out_dir}", 8000)
        self.exported.emit(result)

    def shutdown(self) -> None:
        for loader in (self.preparer, self.renders, self.paths):
            loader.shutdown()
