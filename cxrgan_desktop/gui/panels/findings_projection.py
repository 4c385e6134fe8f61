"""Find in latent space: project an opened radiograph into the generator's latent space in
the window's job slot, show original | reconstruction | difference in a pair view, and add
the reconstruction to the gallery with its latent, so that the Findings sliders and morphs
start from it.

The job is the library's :func:`~cxrgan_desktop.tasks.project.project_image`, writing a
session folder (``latent.npy``, the three images, ``projection.json``). The gallery entry is
labelled synthetic and derived: its details carry the latent file and the radiograph's
SHA-256 (:class:`~cxrgan_desktop.imaging.synthetic_provenance.ProjectionSource`), which
every export from it (the gallery's, and frame sets) writes into its provenance.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QStackedWidget, QWidget

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.jobs.model_cache import ModelCache
from cxrgan_desktop.gui.jobs.slot import JobSlot
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.gui.panels.findings import FindingsPanel
from cxrgan_desktop.gui.viewer.gallery import GalleryEntry, GalleryItem, Select
from cxrgan_desktop.gui.viewer.pair import PairImages, PairView


def is_real(entry: GalleryEntry | None) -> bool:
    """An opened image: no seed and no latent (a radiograph, or any picture)."""
    return entry is not None and "seed" not in entry.details and \
        entry.details.get("latent") is None


def projection_folder(source: Path, now: _dt.datetime | None = None) -> Path:
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.stem)[:40] or "image"
    return paths.data_dir() / "sessions" / f"{stamp}-projection-{stem}"


@dataclass(frozen=True)
class ProjectionDone:
    """What the worker hands back: the library's result and the pair to show."""

    result: Any  # tasks.project.ProjectResult
    pair: PairImages
    source: GalleryEntry
    model_path: str
    model_name: str
    model_sha256: str

    def gallery_item(self) -> GalleryItem:
        """The reconstruction with its latent, labelled synthetic and derived. Not selected:
        the pair view stays on screen (choosing an image in the gallery leaves it), and the
        window hands the entry to the Findings tab."""
        from cxrgan_desktop.tasks.project import IMAGE_NAMES, LATENT_NAME, projection_source

        projection = self.result.projection
        folder = self.result.out_dir
        latent_file = folder / LATENT_NAME
        details = {"model_name": self.model_name, "model_sha256": self.model_sha256,
                   "model_path": self.model_path,
                   "latent": np.asarray(projection.latent, np.float32).reshape(-1),
                   "latents_file": str(latent_file),
                   "derived_from": projection_source(latent_file),
                   "projection": {"source": self.source.title, "folder": str(folder),
                                  "psnr_db": projection.psnr, "ssim": projection.ssim}}
        entry = GalleryEntry(folder / IMAGE_NAMES["reconstruction"],
                             f"projection of {self.source.title}, synthetic, derived", details)
        return GalleryItem(entry, projection.reconstruction, Select.NO)

    def titles(self) -> tuple[str, str, str]:
        projection = self.result.projection
        return (f"Original: {self.source.title} (as the generator sees it)",
                f"Reconstruction (synthetic, derived; {self.model_name})",
                f"Difference (original − reconstruction): PSNR {projection.psnr:.2f} dB, "
                f"SSIM {projection.ssim:.4f}")


def projection_job(entry: GalleryEntry, model_path: str, load_model: Callable[[str], Any],
                   out_dir: Path, restarts: int, steps: int, device: str):
    """The job function (``fn(progress, cancel)``) of one projection."""

    def job(progress, cancel) -> ProjectionDone:
        from cxrgan_desktop.engine.devices import resolve_device
        from cxrgan_desktop.gui.panels.findings_work import TORCH_LOCK
        from cxrgan_desktop.gui.viewer.pair import read_pair
        from cxrgan_desktop.tasks.project import IMAGE_NAMES, ProjectOptions, project_image

        model = load_model(model_path)
        options = ProjectOptions(restarts=restarts, steps=steps,
                                 device=str(resolve_device(device)))
        with TORCH_LOCK:
            result = project_image(entry.path, model, out_dir, options, progress, cancel)
        pair = read_pair(out_dir / IMAGE_NAMES["original"],
                         out_dir / IMAGE_NAMES["reconstruction"])
        return ProjectionDone(result, pair, entry, model_path, model.name, model.sha256)

    return job


class ProjectionController(QObject):
    """Find in latent space for the chosen opened image, with the Generate tab's model."""

    itemReady = Signal(object)  # GalleryItem: the reconstruction
    finished = Signal(object, object)  # ProjectionDone, the reconstruction's GalleryEntry
    status = Signal(str, int)

    def __init__(self, slot: JobSlot, panel: FindingsPanel, settings: Settings,
                 cache: ModelCache, current_model: Callable[[], str | None],
                 pair_view: PairView, centre: QStackedWidget, dialog_parent: QWidget) -> None:
        super().__init__(dialog_parent)
        self.slot, self.panel, self.settings, self.cache = slot, panel, settings, cache
        self.current_model, self.pair_view, self.centre = current_model, pair_view, centre
        self.dialog_parent = dialog_parent

    def find_in_latent_space(self, entry: GalleryEntry | None) -> bool:
        if not is_real(entry):
            QMessageBox.information(self.dialog_parent, "Find in latent space",
                                    "Choose an opened radiograph: a generated image already "
                                    "has its latent.")
            return False
        model_path = self.current_model()
        if not model_path:
            QMessageBox.information(self.dialog_parent, "Find in latent space", "Choose or "
                                    "open a generator in the Generate tab first.")
            return False
        restarts, steps = self.panel.restarts.value(), self.panel.steps.value()
        self.panel.store_settings(self.settings.explore)
        runner = JobRunner(projection_job(entry, model_path, self.cache.get,
                                          projection_folder(entry.path), restarts, steps,
                                          self.settings.device), "project")
        runner.succeeded.connect(self._done)
        return self.slot.start(runner, f"Finding {entry.title} in latent space ({restarts} "
                               f"start(s) x {steps} steps)…", self.panel)

    def _done(self, done: ProjectionDone) -> None:
        original, reconstruction, difference = done.titles()
        self.pair_view.show_pair(done.pair, original, reconstruction)
        self.pair_view.titles[2].setText(difference)
        self.centre.setCurrentWidget(self.pair_view)
        item = done.gallery_item()
        self.itemReady.emit(item)
        projection = done.result.projection
        self.status.emit(f"Projected {done.source.title}: PSNR {projection.psnr:.2f} dB, SSIM "
                         f"{projection.ssim:.4f}; in {done.result.out_dir}", 0)
        self.panel.status.setText(f"Projection of {done.source.title}: PSNR "
                                  f"{projection.psnr:.2f} dB, SSIM {projection.ssim:.4f}. "
                                  "Its reconstruction is in the gallery, with its latent.")
        self.finished.emit(done, item.entry)
