"""The Findings tab's work: preparing an image's slider directions, rendering slider
positions (a quick preview while dragging, full size on release), each finding's
probability path for the plot, and exporting frame sets in the window's job slot.

Slider work goes through :class:`LatestOnly` loaders, so a fast drag renders at most the
newest position and the viewer ends on the last one. The directions are taken once per
image (:func:`~cxrgan_desktop.engine.latent_shift.finding_directions`, one backward pass per
finding), after which a slider position costs one render
(:func:`~cxrgan_desktop.engine.latent_shift.combine_shifts`): one slider alone gives exactly
the frame :func:`~cxrgan_desktop.engine.latent_shift.shift_path` renders at that lambda.

The worker functions here hold one lock around torch work: the loaders and the export run
in different threads and share one model, and LCO's ``frozen`` (which the engine uses)
saves and restores the weights' flags, which two threads at once would scramble.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
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
from cxrgan_desktop.gui.viewer.gallery import Gallery, GalleryEntry
from cxrgan_desktop.gui.viewer.pair import DIFFERENCE_UNITS, difference_window
from cxrgan_desktop.gui.viewer.viewer import ImageViewer
from cxrgan_desktop.imaging.display import DisplayInfo, NamedWindow

TORCH_LOCK = threading.Lock()  # see the module: one torch user of the shared model at a time
AUTO_PREVIEW_FULL_UP_TO = 256  # px: below this a full render is quick (2.4 ms at 64 px)


@dataclass(frozen=True)
class Subject:
    """A gallery image with a known latent: where sliders and morphs start."""

    entry: GalleryEntry
    latent: np.ndarray  # [latent_size] float32
    model_path: str
    truncation: float = 1.0

    @property
    def title(self) -> str:
        return self.entry.title


def subject_of(entry: GalleryEntry | None) -> Subject | None:
    """The entry as a start for sliders, or None when its latent is unknown (an opened
    radiograph: project it first)."""
    if entry is None:
        return None
    latent, model_path = entry.details.get("latent"), entry.details.get("model_path")
    if latent is None or not model_path:
        return None
    return Subject(entry, np.asarray(latent, dtype=np.float32).reshape(-1), str(model_path),
                   float(entry.details.get("truncation", 1.0)))


@dataclass
class Prepared:
    """One image made ready for its sliders (built in a worker)."""

    subject: Subject
    classifier_path: str
    model: Any  # LoadedGenerator
    classifier: Any  # LoadedClassifier
    directions: dict[str, np.ndarray] = field(repr=False)
    start: np.ndarray = field(repr=False)  # [R, R] float32: the start latent rendered
    renderer: Any = field(repr=False)
    preview_renderer: Any = field(default=None, repr=False)  # None: previews at full size
    device: str = "cpu"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.classifier.labels)


def wants_half_preview(preview: str, resolution: int) -> bool:
    return preview == "half" or (preview == "auto" and resolution > AUTO_PREVIEW_FULL_UP_TO)


def prepare(subject: Subject, classifier_path: str, load_model: Callable[[str], Any],
            preview: str, device: str = "auto") -> Prepared:
    """Load the model and classifier, take every finding's direction at the start latent,
    render the start. Raises ValueError for a latent of another model's size."""
    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.devices import resolve_device
    from cxrgan_desktop.engine.latent_shift import finding_directions, preview_model
    from cxrgan_desktop.engine.render import Renderer

    model = load_model(subject.model_path)
    classifier = load_classifier(classifier_path)
    if subject.latent.size != model.config.latent_size:
        raise ValueError(f"{subject.title}: its latent has {subject.latent.size} values, the "
                         f"model {model.name} takes {model.config.latent_size}")
    where = str(resolve_device(device))
    with TORCH_LOCK:
        directions = finding_directions(model, classifier, classifier.labels, subject.latent,
                                        device=where)
        renderer = Renderer(model, where)
        start = renderer.render(subject.latent[None])[0, 0].numpy()
        small = None
        if wants_half_preview(preview, model.resolution):
            try:
                small = Renderer(preview_model(model, 1), where)
            except ValueError:  # a 4 px model, or one in a fade-in: preview at full size
                small = None
    return Prepared(subject, classifier_path, model, classifier, directions, start, renderer,
                    small, where)


def enlarge(small: np.ndarray, size: int) -> np.ndarray:
    """A preview on the full image's grid, each pixel repeated (blocky on purpose: it says
    'preview', and the window and zoom stay those of the full image)."""
    factor = size // small.shape[0]
    return np.kron(small, np.ones((factor, factor), dtype=small.dtype)) if factor > 1 else small


def render_shift(prepared: Prepared, lambdas: dict[str, float], quick: bool) -> np.ndarray:
    """The start latent turned by every slider's angle (degrees), rendered: [R, R] in [0, 1];
    ``quick`` with a half-size preview renderer: that stage, enlarged to R."""
    from cxrgan_desktop.engine.latent_shift import combine_shifts

    z = combine_shifts(prepared.subject.latent, prepared.directions, lambdas)
    with TORCH_LOCK:
        if quick and prepared.preview_renderer is not None:
            small = prepared.preview_renderer.render(z[None])[0, 0].numpy()
            return enlarge(small, prepared.model.resolution)
        return prepared.renderer.render(z[None])[0, 0].numpy()


def path_lambdas(range_deg: float, frames: int) -> np.ndarray:
    """Evenly spaced angles from -range to +range (an odd count includes 0)."""
    return np.linspace(-range_deg, range_deg, frames)


def shift_curve(prepared: Prepared, finding: str, range_deg: float, frames: int) -> Any:
    """The finding's single-direction path over the slider range, every label's
    probability on each frame (the plot's data)."""
    from cxrgan_desktop.engine.latent_shift import shift_path

    with TORCH_LOCK:
        return shift_path(prepared.model, prepared.classifier, finding,
                          prepared.subject.latent, path_lambdas(range_deg, frames),
                          device=prepared.device)


def morph_path(prepared: Prepared, end: np.ndarray, frames: int) -> Any:
    """Spherical interpolation from the start latent to ``end``, read by the classifier."""
    from cxrgan_desktop.engine.interpolation import interpolation_path

    with TORCH_LOCK:
        return interpolation_path(prepared.model, prepared.subject.latent, end, frames,
                                  prepared.classifier, device=prepared.device)


def latent_source(subject: Subject, folder: Path, name: str = "start_latent.npy") -> Any:
    """Where a path's start (or end) latent came from, for path.json and the DICOM series:
    the seed and index of a plain generate, the projection's latent file (derived from a
    radiograph), or else the latent itself written beside the frames as ``name``."""
    from cxrgan_desktop.core.fileio import atomic_writer
    from cxrgan_desktop.tasks.latent_frames import LatentSource

    details = subject.entry.details
    note = "" if subject.truncation == 1.0 else (
        f"frames rendered without truncation (psi 1); the gallery image had psi "
        f"{subject.truncation:g}")
    if details.get("latents_file"):
        return LatentSource(latents_file=Path(details["latents_file"]), row=0,
                            note=note or subject.title, derived_from=details.get("derived_from"))
    if "seed" in details and "lco" not in details:
        return LatentSource(seed=int(details["seed"]), index=int(details["index"]), note=note)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with atomic_writer(path) as handle:
        np.save(handle, subject.latent[None].astype(np.float32), allow_pickle=False)
    return LatentSource(latents_file=path, row=0,
                        note="; ".join(x for x in (f"the latent of {subject.title}", note) if x))


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
        note = "" if subject.truncation == 1.0 else (
            f" The sliders move the untruncated image (psi 1; the gallery image has psi "
            f"{subject.truncation:g}).")
        self.panel.set_ready(True, f"<b>{subject.title}</b> ({state.model.name}, "
                             f"{state.model.resolution} px), findings of "
                             f"{state.classifier.name}. Synthetic: every frame is.{note}")
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
        self.status.emit(f"Morphing {self.state.subject.title} into {end.title}…", 0)

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
        if chosen is None:
            return
        folder, overwrite = chosen
        lambdas = path_lambdas(self.panel.range_deg(), self.panel.frames.value())

        def job(progress, cancel):
            from cxrgan_desktop.tasks.latent_frames import shift_to_folder

            source = latent_source(state.subject, folder)
            with TORCH_LOCK:
                return shift_to_folder(state.model, state.classifier, finding,
                                       state.subject.latent, lambdas, folder, source=source,
                                       device=state.device, overwrite=overwrite,
                                       progress=progress, cancel=cancel)

        self._start_export(job, f"Exporting {len(lambdas)} frames of {finding}…")

    def export_morph(self) -> None:
        state, end = self.state, self.morph_subject
        if state is None or end is None or self.morph is None:
            return
        chosen = self._folder("Export the morph to a folder")
        if chosen is None:
            return
        folder, overwrite = chosen
        frames = len(self.morph.frames)

        def job(progress, cancel):
            from cxrgan_desktop.tasks.latent_frames import interpolate_to_folder

            source = latent_source(state.subject, folder)
            end_source = latent_source(end, folder, "end_latent.npy")
            with TORCH_LOCK:
                return interpolate_to_folder(state.model, state.subject.latent, end.latent,
                                             frames, folder, source=source, end=end_source,
                                             classifier=state.classifier, device=state.device,
                                             overwrite=overwrite, progress=progress,
                                             cancel=cancel)

        self._start_export(job, f"Exporting the morph ({frames} frames)…")

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
