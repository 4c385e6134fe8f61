"""The Generate tab's jobs: sampling a model into a session folder, opening a model file,
and asking the machine which devices it has.

Kept out of the main window, which wires ``itemReady`` to the gallery and ``status`` to its
status bar. Models are loaded through the shared :class:`ModelCache` (see its thread rule).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.jobs.model_cache import ModelCache
from cxrgan_desktop.gui.jobs.slot import JobSlot
from cxrgan_desktop.gui.jobs.worker import JobFunction, JobRunner
from cxrgan_desktop.gui.panels.generate import GeneratePanel, GenerateRequest
from cxrgan_desktop.gui.viewer.gallery import GalleryEntry, GalleryItem, Select

MODEL_FILTER = "Model files (*.safetensors *.pth *.pt *.ckpt);;All files (*)"


@dataclass(frozen=True)
class GeneratedImage:
    """One image of a Generate run, handed from the worker to the GUI thread."""

    index: int
    pixels: np.ndarray  # [H, W] float32 in [0, 1]
    path: Path
    seed: int
    model_name: str
    model_sha256: str
    truncation: float = 1.0
    latent: np.ndarray | None = None  # [latent_size] float32: image ``index`` of ``seed``
    model_path: str = ""  # the weights file, for the Findings tab to load the model again

    def gallery_item(self) -> GalleryItem:
        """The gallery's entry; the run's first image takes the selection (and the viewer).
        A truncated image says so in its title: its seed and index alone do not make it."""
        title = f"seed {self.seed} #{self.index}"
        if self.truncation != 1.0:
            title += f" \N{GREEK SMALL LETTER PSI}{self.truncation:.2f}"
        details = {"seed": self.seed, "index": self.index, "model_name": self.model_name,
                   "model_sha256": self.model_sha256, "truncation": self.truncation}
        if self.latent is not None:  # the Findings tab and morphs start from it
            details.update(latent=self.latent, model_path=self.model_path)
        entry = GalleryEntry(self.path, title, details)
        return GalleryItem(entry, self.pixels, Select.YES if self.index == 0 else Select.NO)


@dataclass(frozen=True)
class DeviceProbe:
    """Which accelerators torch can use here, and the one ``auto`` picks, in words."""

    available: dict[str, bool] = field(default_factory=dict)  # "cuda", "mps"
    description: str = ""


def session_folder(seed: int, now: _dt.datetime | None = None) -> Path:
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return paths.data_dir() / "sessions" / f"{stamp}-seed{seed}"


def generate_job(request: GenerateRequest, out_dir: Path, overwrite: bool,
                 load_model: Callable[[str], Any],
                 emit: Callable[[GeneratedImage], None]) -> JobFunction:
    """The job function (``fn(progress, cancel)``) of one Generate run; returns the
    library's ``GenerateResult`` and hands each written image to ``emit``."""

    def job(progress, cancel):
        from cxrgan_desktop.engine.devices import resolve_device
        from cxrgan_desktop.engine.render import latents_for_seed
        from cxrgan_desktop.tasks.generate import generate_to_folder

        model = load_model(request.model)
        size = model.config.latent_size
        return generate_to_folder(
            model, out_dir, n=request.count, seed=request.seed,
            batch_size=request.batch_size, device=str(resolve_device(request.device)),
            overwrite=overwrite, progress=progress, cancel=cancel,
            truncation=request.truncation,
            on_image=lambda index, image, path: emit(GeneratedImage(
                index, image, Path(path), request.seed, model.name, model.sha256,
                request.truncation, latents_for_seed(request.seed, 1, size, start=index)[0],
                request.model)))

    return job


def probe_devices_job(progress, cancel) -> DeviceProbe:
    """Imports torch, so it runs in a worker while the window comes up."""
    import torch

    from cxrgan_desktop.engine.devices import describe_device, resolve_device

    available = {"cuda": torch.cuda.is_available(),
                 "mps": bool(getattr(torch.backends, "mps", None)
                             and torch.backends.mps.is_available())}
    return DeviceProbe(available, describe_device(resolve_device("auto")))


class GenerateController(QObject):
    """Wires the Generate panel to the window's job slot, settings and model cache."""

    itemReady = Signal(object)  # GalleryItem, for each image written
    finished = Signal(object)  # the library's GenerateResult of a completed run
    modelOpened = Signal(str)  # a model file checked and selected in the panel
    deviceDescribed = Signal(str)  # the device ``auto`` uses, in words
    status = Signal(str, int)  # message, milliseconds (0: until replaced)

    def __init__(self, slot: JobSlot, panel: GeneratePanel, settings: Settings,
                 cache: ModelCache, dialog_parent: QWidget) -> None:
        super().__init__(dialog_parent)
        self.slot, self.panel, self.settings, self.cache = slot, panel, settings, cache
        self.dialog_parent = dialog_parent
        panel.generateRequested.connect(self.start)
        panel.cancelRequested.connect(slot.cancel)
        panel.openModelRequested.connect(self.open_model)

    def start(self, request: GenerateRequest) -> None:
        from cxrgan_desktop.tasks.generate import existing_run

        out_dir = session_folder(request.seed)
        earlier = existing_run(out_dir)  # the same second and seed: ask, never mix runs
        if earlier is not None and QMessageBox.question(
                self.dialog_parent, "Generate", f"{earlier}.\n\nOverwrite it?"
        ) != QMessageBox.StandardButton.Yes:
            return
        runner = JobRunner(generate_job(request, out_dir, earlier is not None, self.cache.get,
                                        lambda image: runner.emit_item(image)), "generate")
        runner.item.connect(self._generated)
        runner.succeeded.connect(self._finished)
        self.panel.store_settings(self.settings)
        self.slot.start(runner, f"Generating {request.count} images (seed {request.seed})…",
                        self.panel)

    def _generated(self, image: GeneratedImage) -> None:
        self.itemReady.emit(image.gallery_item())

    def _finished(self, result) -> None:
        self.status.emit(f"Generated {len(result.files)} images in {result.out_dir}", 0)
        self.finished.emit(result)

    def open_model(self) -> None:
        file, _ = QFileDialog.getOpenFileName(self.dialog_parent, "Open a generator",
                                              self.settings.last_open_folder, MODEL_FILTER)
        if file:
            self.open_model_file(file)

    def open_model_file(self, file: str) -> None:
        """Load and check the file in the worker (kept in the cache for the next run)."""
        runner = JobRunner(lambda progress, cancel: self.cache.get(file), "open model")
        runner.succeeded.connect(partial(self._model_opened, file))
        self.slot.start(runner, f"Checking {Path(file).name}…", self.panel)

    def _model_opened(self, file: str, model) -> None:
        self.panel.refresh_models(select=file)
        self.settings.last_model = file
        self.modelOpened.emit(file)
        self.status.emit(f"Opened {model.name}: {model.source_format}, "
                         f"{model.resolution}x{model.resolution}", 8000)

    def probe_devices(self) -> JobRunner:
        """Start asking which devices exist; the panel greys out the missing ones."""
        runner = JobRunner(probe_devices_job, "probe devices", parent=self)
        runner.succeeded.connect(self._devices_probed)
        runner.start()
        return runner

    def _devices_probed(self, probe: DeviceProbe) -> None:
        for name, ok in probe.available.items():
            self.panel.set_device_available(name, ok)
        self.deviceDescribed.emit(probe.description)
