"""Run the experiment: split the real patients once, train every arm with one recipe,
predict the held-out real test set, and compute the comparison.

Each finished arm leaves ``arms/<name>/`` with its classifier, its test-set probabilities and
``arm.json`` (composition, seed, training history, the key of everything that decided it).
A rerun with the same configuration skips finished arms, so an interrupted experiment
resumes at the arm it was in; a changed configuration retrains the arms it affects.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress, sub_progress
from cxrgan_desktop.engine.classifier.data import labelled_images, patient_split
from cxrgan_desktop.engine.classifier.files import load_classifier
from cxrgan_desktop.engine.classifier.training import predict, train_classifier
from cxrgan_desktop.engine.training.dataset import DatasetSpec
from cxrgan_desktop.engine.tstr.arms import Arm, check_arms, plan_arms
from cxrgan_desktop.engine.tstr.config import TSTRConfig
from cxrgan_desktop.engine.tstr.results import arm_statistics, results_table

ARM_FILE, PROBABILITIES_FILE, CLASSIFIER_FILE = ("arm.json", "test_probabilities.npy",
                                                 "classifier.safetensors")


def _arm_key(config: TSTRConfig, arm: Arm, fingerprints: list[str]) -> str:
    """Everything that decides an arm's result, hashed (the bootstrap count does not)."""
    record = config.to_json()
    record.pop("bootstrap")
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode())
    for part in (arm.name, *fingerprints):
        digest.update(part.encode())
    digest.update(arm.real.tobytes())
    digest.update(arm.synthetic.tobytes())
    return digest.hexdigest()


def _finished(folder: Path, key: str) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / ARM_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("key") != key or not (folder / PROBABILITIES_FILE).is_file():
        return None
    return record


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def run_tstr(config: TSTRConfig, out_dir: str | Path, device: str = "cpu",
             progress: ProgressFn = no_progress,
             cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run (or resume) the experiment into ``out_dir``; returns what ``results.json`` holds."""
    import torch

    out = Path(out_dir)
    size = config.classifier.input_size
    progress(0.0, "caching the real images")
    real = labelled_images(DatasetSpec(config.real_images, config.real_labels), config.labels,
                           size, progress=sub_progress(progress, 0.0, 0.04), cancel=cancel)
    progress(0.04, "caching the synthetic images")
    synthetic = labelled_images(DatasetSpec(config.synthetic_images, config.synthetic_labels),
                                config.labels, size,
                                progress=sub_progress(progress, 0.04, 0.08), cancel=cancel)
    train, test = patient_split(real.patient_ids, config.test_fraction, config.seed)
    arms = plan_arms(config, real, synthetic, train)
    problems, warnings = check_arms(
        config, arms, lambda arm: arm.pool(real, synthetic).patient_ids,
        lambda ids: patient_split(ids, config.classifier.val_fraction, config.seed))
    if problems:
        raise ValueError("the experiment cannot run as planned; nothing was trained:\n"
                         + "\n".join(problems))
    fingerprints = [real.fingerprint, synthetic.fingerprint]
    records: dict[str, dict[str, Any]] = {}
    probabilities: dict[str, np.ndarray] = {}
    span = 0.9 / len(arms)
    for number, arm in enumerate(arms):
        check_cancel(cancel)
        folder = out / "arms" / arm.name
        key = _arm_key(config, arm, fingerprints)
        arm_progress = sub_progress(progress, 0.08 + number * span, 0.08 + (number + 1) * span)
        record = _finished(folder, key)
        if record is None:
            record = _train_arm(config, arm, real, synthetic, test, folder, key,
                                torch.device(device), arm_progress, cancel)
        else:
            arm_progress(1.0, f"arm {arm.name}: already done")
        records[arm.name] = record
        probabilities[arm.name] = np.load(folder / PROBABILITIES_FILE, allow_pickle=False)
    progress(0.98, f"statistics ({config.bootstrap} bootstrap resamples)")
    statistics = arm_statistics(probabilities, real.targets[test], real.patient_ids[test],
                                config.labels, config.bootstrap, config.seed)
    for name, record in records.items():
        record["statistics"] = statistics[name]
    results = {
        "software": f"cxrgan-desktop {__version__}",
        "config": config.to_json(),
        "bootstrap": config.bootstrap,
        "split": {"train_images": len(train), "test_images": len(test),
                  "train_patients": len(np.unique(real.patient_ids[train])),
                  "test_patients": len(np.unique(real.patient_ids[test])),
                  "shared_patients": len(np.intersect1d(real.patient_ids[train],
                                                        real.patient_ids[test]))},
        "test": {"images": len(test), "patients": len(np.unique(real.patient_ids[test])),
                 "positives": dict(zip(config.labels, real.positives(test).tolist(),
                                       strict=True))},
        "arms": records,
        "warnings": warnings,
    }
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.txt", results_table(results))
    progress(1.0, "done")
    return results


def _train_arm(config: TSTRConfig, arm: Arm, real, synthetic, test: np.ndarray,
               folder: Path, key: str, device, progress: ProgressFn,
               cancel: threading.Event | None) -> dict[str, Any]:
    recipe = config.classifier
    pool = arm.pool(real, synthetic)
    report = train_classifier(
        type(recipe)(**{**asdict(recipe), "name": f"tstr-{arm.name}", "seed": config.seed}),
        pool, folder / CLASSIFIER_FILE, device=device,
        provenance={"tstr_arm": arm.name}, progress=sub_progress(progress, 0.0, 0.9),
        cancel=cancel)
    loaded = load_classifier(report.path)
    columns = [loaded.classifier.label_index(name) for name in config.labels]
    probs = predict(loaded.classifier.to(device), real, test, device,
                    progress=sub_progress(progress, 0.9, 1.0), cancel=cancel)[:, columns]
    atomic_write_bytes(folder / PROBABILITIES_FILE, _npy(probs.astype(np.float32)))
    record = {"arm": arm.name, "kind": arm.kind, "key": key,
              "composition": arm.composition(), "seed": config.seed,
              "best_epoch": report.best_epoch, "history": report.history,
              "training_split": report.split,
              "validation_mean_auroc": report.validation.to_json()["mean_auroc"]}
    atomic_write_json(folder / ARM_FILE, record)
    progress(1.0, f"arm {arm.name}: trained")
    return record
