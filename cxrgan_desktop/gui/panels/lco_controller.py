"""Running an LCO request from the panel: the worker-side job and the gallery entries.

The job is the library's :func:`~cxrgan_desktop.tasks.archive.build_archive` writing a
session folder; each finished sample and each mid-optimisation snapshot is handed to the GUI
thread through the runner's ``item`` signal as an :class:`LCOItem` or :class:`LCOSnapshot`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop.core import paths
from cxrgan_desktop.gui.panels.lco import LCOPanelRequest, ProbabilityRow
from cxrgan_desktop.gui.viewer.gallery import GalleryEntry


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
            info = lco_info(result, classifier, labels)
            details = {"seed": request.seed, "index": result.index, "model_name": model.name,
                       "model_sha256": model.sha256, "lco": info,
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
                             cancel=cancel, on_result=on_result, on_snapshot=on_snapshot)

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
