"""Running an LCO request from the panel: the worker-side job, the gallery entries and the
:class:`LCOController` that wires the Synthesise tab to the window's job slot.

The job is the library's :func:`~cxrgan_desktop.tasks.archive.build_archive` writing a
session folder; each finished sample and each mid-optimisation snapshot is handed to the GUI
thread through the runner's ``item`` signal as an :class:`LCOItem` or :class:`LCOSnapshot`.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.jobs.model_cache import ModelCache
from cxrgan_desktop.gui.jobs.slot import JobSlot
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.gui.panels.lco import LCOPanel, LCOPanelRequest, ProbabilityRow
from cxrgan_desktop.gui.viewer.gallery import GalleryEntry, GalleryItem, Select

SNAPSHOT_INTERVAL = 0.1  # seconds: the viewer follows the optimisation at most 10 times a second


@dataclass(frozen=True)
class LCOItem:
    entry: GalleryEntry | None  # None for a failed sample (no image)
    image: np.ndarray | None
    index: int


@dataclass(frozen=True)
class LCOSnapshot:
    image: np.ndarray
    text: str
    rows: list[ProbabilityRow]


def session_folder(request: LCOPanelRequest) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return paths.data_dir() / "sessions" / f"{stamp}-lco-seed{request.seed}"


def make_job(request: LCOPanelRequest, model_path: str, load_model: Callable[[str], Any],
             out_dir: Path, emit: Callable[[object], None]):
    """The job function (``fn(progress, cancel)``) for a :class:`JobRunner`."""

    def job(progress, cancel):
        from cxrgan_desktop.engine.classifier.files import load_classifier
        from cxrgan_desktop.engine.devices import resolve_device
        from cxrgan_desktop.engine.lco import LCOSettings, LCOTarget
        from cxrgan_desktop.tasks.archive import build_archive, lco_info, repeated_target

        model = load_model(model_path)
        classifier = load_classifier(request.classifier)
        judge = load_classifier(request.judge) if request.judge else None
        target = LCOTarget(request.present, request.absent, request.threshold,
                           absent_threshold=request.absent_threshold)
        labels = classifier.labels
        settings = LCOSettings(steps=request.steps, restarts=request.restarts,
                               batch_size=request.batch_size)

        def on_result(result, path):
            if path is None:
                emit(LCOItem(None, None, result.index))
                return
            judge_values = None
            if result.judge_probabilities is not None and judge is not None:
                judge_values = dict(zip(judge.labels, result.judge_probabilities.tolist(),
                                        strict=True))
            info = lco_info(result, classifier, labels, request.truncation)
            details = {"seed": request.seed, "index": result.index, "model_name": model.name,
                       "model_sha256": model.sha256, "model_path": model_path,
                       "latent": np.asarray(result.z, dtype=np.float32).reshape(-1),
                       "truncation": request.truncation, "lco": info,
                       "thresholds": {n: target.threshold_of(n) for n in target.specified},
                       "judge": judge_values}
            title = f"LCO #{result.index}" + ("" if result.judge_agrees in (None, True)
                                              else " (judge disagrees)")
            emit(LCOItem(GalleryEntry(Path(path), title, details), result.image, result.index))

        def on_snapshot(snapshot):
            probabilities = dict(zip(labels, snapshot.probabilities.tolist(), strict=True))
            rows = [ProbabilityRow(n, probabilities[n], wanted, target.threshold_of(n))
                    for n, wanted in target.requested().items()]
            emit(LCOSnapshot(snapshot.image, f"sample {snapshot.index}, attempt "
                             f"{snapshot.attempt + 1}, step {snapshot.step}", rows))

        return build_archive(model, classifier, repeated_target(target, request.count,
                                                                 request.seed),
                             out_dir, settings=settings, judge_classifier=judge,
                             image_format=request.image_format,
                             device=str(resolve_device("auto")), progress=progress,
                             cancel=cancel, on_result=on_result, on_snapshot=on_snapshot,
                             truncation=request.truncation)

    return job


def probability_rows(entry: GalleryEntry) -> list[ProbabilityRow]:
    """Bars for a gallery entry made by LCO (empty for any other entry)."""
    info = entry.details.get("lco")
    if info is None:
        return []
    judge = entry.details.get("judge") or {}
    thresholds = entry.details.get("thresholds", {})
    return [ProbabilityRow(name, float(info.probabilities[name]), bool(wanted),
                           float(thresholds.get(name, 0.5)), judge.get(name))
            for name, wanted in info.requested.items()]


def summary_text(summary: Any) -> str:
    """The status line after a run: accepted of requested, the judge, the archive."""
    return (f"LCO: {summary.accepted} of {summary.requested} accepted"
            + ("" if summary.judge_agreement is None else
               f", judge agrees on {100 * summary.judge_agreement:.0f} %")
            + f"; archive in {summary.out_dir}")


class LCOController(QObject):
    """Wires the Synthesise panel to the window's job slot, settings and model cache; the
    generator is the one chosen in the Generate tab (``current_model``)."""

    itemReady = Signal(object)  # GalleryItem, for each accepted sample
    preview = Signal(object)  # [H, W] float in [0, 1]: the image being optimised
    status = Signal(str, int)  # message, milliseconds (0: until replaced)

    def __init__(self, slot: JobSlot, panel: LCOPanel, settings: Settings, cache: ModelCache,
                 current_model: Callable[[], str | None], dialog_parent: QWidget) -> None:
        super().__init__(dialog_parent)
        self.slot, self.panel, self.settings, self.cache = slot, panel, settings, cache
        self.current_model, self.dialog_parent = current_model, dialog_parent
        self._last_snapshot = 0.0  # when the viewer last showed a snapshot (monotonic s)
        panel.lcoRequested.connect(self.start)
        panel.cancelRequested.connect(slot.cancel)

    def start(self, request: LCOPanelRequest) -> None:
        model_path = self.current_model()
        if not model_path:
            QMessageBox.information(self.dialog_parent, "Synthesise", "Choose or open a "
                                    "generator in the Generate tab first.")
            return
        runner = JobRunner(make_job(request, model_path, self.cache.get,
                                    session_folder(request),
                                    lambda item: runner.emit_item(item)), "lco")
        runner.item.connect(self._item)
        runner.succeeded.connect(self.panel.show_summary)
        runner.succeeded.connect(lambda summary: self.status.emit(summary_text(summary), 0))
        self.panel.store_settings(self.settings.lco)
        self._last_snapshot = 0.0
        wanted = " + ".join(request.present) or "-"
        self.slot.start(runner, f"Synthesising {request.count} images: {wanted}"
                        + (f", no {', no '.join(request.absent)}" if request.absent else "")
                        + "…", self.panel)

    def _item(self, item: LCOItem | LCOSnapshot) -> None:
        if isinstance(item, LCOSnapshot):
            now = time.monotonic()
            if now - self._last_snapshot >= SNAPSHOT_INTERVAL:
                self._last_snapshot = now
                self.preview.emit(item.image)
                self.panel.bars.set_rows(item.rows, f"optimising: {item.text}")
        elif item.entry is not None:
            self.itemReady.emit(GalleryItem(item.entry, item.image, Select.IF_FIRST))

    def show_bars(self, entry: GalleryEntry) -> None:
        """The chosen gallery entry's probabilities, if LCO made it (the details are at
        hand: no file is read)."""
        if "lco" in entry.details:
            self.panel.bars.set_rows(probability_rows(entry), entry.title)
