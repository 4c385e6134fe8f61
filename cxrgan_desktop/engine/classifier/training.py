"""Training and evaluating a pathology classifier (CheXNet's recipe, scaled to the data).

Recipe: Adam (lr 0.001, betas 0.9/0.999), learning rate divided by 10 when the validation
loss stops falling, the weights of the epoch with the best mean validation AUROC kept.
Loss: class-balanced binary cross-entropy, per label weighting positives by N / (2P) and
negatives by N / (2(N - P)) on the training split, so a finding present in 0.2 % of images
(Hernia) is not learnt as "always absent". Augmentation: small random zoom, shift and
rotation, and a small gain and offset of intensity; no horizontal flip, because a chest is
not symmetric (heart, aortic knob and gastric bubble are on the left) and a flipped chest is
not a plausible radiograph.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.engine.classifier.data import TrainingImages, patient_split
from cxrgan_desktop.engine.classifier.files import save_classifier
from cxrgan_desktop.engine.classifier.model import ClassifierSpec, PathologyClassifier
from cxrgan_desktop.labels.chestxray14 import FINDINGS
from cxrgan_desktop.metrics.auroc import auroc_per_label, mean_defined

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierTrainConfig:
    name: str = "classifier"
    architecture: str = "densenet121"
    input_size: int = 256
    labels: tuple[str, ...] = FINDINGS
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.2
    seed: int = 0
    augment: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be at least 1 and batch size at least 2 (batch norm)")
        ClassifierSpec(self.architecture, self.labels, self.input_size)  # validates


@dataclass
class LabelReport:
    label: str
    auroc: float
    positives: int
    negatives: int


@dataclass
class EvaluationReport:
    """Per-label AUROC on a set of images, with the counts that make it meaningful."""

    labels: list[LabelReport]
    images: int
    probabilities: np.ndarray = field(repr=False)

    @property
    def mean_auroc(self) -> float:
        return mean_defined([r.auroc for r in self.labels])

    def to_json(self) -> dict[str, Any]:
        return {"images": self.images,
                "mean_auroc": _json_float(self.mean_auroc),
                "labels": [{**asdict(r), "auroc": _json_float(r.auroc)} for r in self.labels]}

    def table(self) -> str:
        """A fixed-width table for the terminal and the closing notes."""
        lines = [f"{'label':<20} {'AUROC':>6} {'pos':>6} {'neg':>6}"]
        for r in self.labels:
            value = "   n/a" if math.isnan(r.auroc) else f"{r.auroc:6.3f}"
            lines.append(f"{r.label:<20} {value} {r.positives:>6} {r.negatives:>6}")
        mean = self.mean_auroc
        lines.append(f"{'mean (defined)':<20} {'n/a' if math.isnan(mean) else f'{mean:6.3f}'}")
        return "\n".join(lines)


@dataclass
class TrainingReport:
    path: Path
    validation: EvaluationReport
    best_epoch: int
    history: list[dict[str, float]]
    split: dict[str, int]


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def balanced_weights(targets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label weights for positives and negatives; 0 for a side the split lacks."""
    n = targets.shape[0]
    positives = targets.sum(axis=0).astype(np.float64)
    negatives = n - positives
    with np.errstate(divide="ignore"):
        w_pos = np.where(positives > 0, n / (2.0 * positives), 0.0)
        w_neg = np.where(negatives > 0, n / (2.0 * negatives), 0.0)
    return (torch.tensor(w_pos, dtype=torch.float32), torch.tensor(w_neg, dtype=torch.float32))


def balanced_bce(logits: torch.Tensor, targets: torch.Tensor, w_pos: torch.Tensor,
                 w_neg: torch.Tensor) -> torch.Tensor:
    weights = targets * w_pos + (1.0 - targets) * w_neg
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random zoom (0.9-1.1), shift (5 %), rotation (5 degrees), gain and offset."""
    n = images.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    scale, angle = uniform(0.9, 1.1), uniform(-5.0, 5.0) * math.pi / 180.0
    shift_x, shift_y = uniform(-0.05, 0.05), uniform(-0.05, 0.05)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1),
                         torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                          align_corners=False)
    gain = uniform(0.9, 1.1).view(n, 1, 1, 1).to(images)
    offset = uniform(-0.05, 0.05).view(n, 1, 1, 1).to(images)
    return (moved * gain + offset).clamp(0.0, 1.0)


@torch.no_grad()
def predict(classifier: PathologyClassifier, data: TrainingImages, indices: np.ndarray,
            device: torch.device, batch_size: int = 32, progress: ProgressFn = no_progress,
            cancel: threading.Event | None = None) -> np.ndarray:
    """Probabilities ``[len(indices), L]`` in eval mode."""
    classifier.eval()
    out = []
    for start in range(0, len(indices), batch_size):
        check_cancel(cancel)
        chunk = indices[start:start + batch_size]
        images = data.batch(chunk).to(device)
        out.append(torch.sigmoid(classifier(images)).float().cpu().numpy())
        progress(min(start + batch_size, len(indices)) / len(indices),
                 f"{min(start + batch_size, len(indices))}/{len(indices)} images")
    return np.concatenate(out) if out else np.zeros((0, len(classifier.labels)), np.float32)


def evaluate(classifier: PathologyClassifier, data: TrainingImages, indices: np.ndarray,
             device: torch.device, progress: ProgressFn = no_progress,
             cancel: threading.Event | None = None) -> EvaluationReport:
    """Per-label AUROC of ``classifier`` over images ``indices`` of ``data``.

    ``data.label_names`` are matched to the classifier's labels by name; a classifier label
    the data does not have is an error (its AUROC would be meaningless).
    """
    columns = [classifier.label_index(name) for name in data.label_names]
    probabilities = predict(classifier, data, indices, device, progress=progress,
                            cancel=cancel)[:, columns]
    truth = data.targets[indices]
    values = auroc_per_label(probabilities, truth)
    labels = [LabelReport(name, value, int(truth[:, j].sum()), int((~truth[:, j]).sum()))
              for j, (name, value) in enumerate(zip(data.label_names, values, strict=True))]
    return EvaluationReport(labels, len(indices), probabilities)


def train_classifier(config: ClassifierTrainConfig, data: TrainingImages, out_path: Path, *,
                     device: torch.device, provenance: dict[str, Any] | None = None,
                     progress: ProgressFn = no_progress,
                     cancel: threading.Event | None = None) -> TrainingReport:
    """Train on a patient-wise split of ``data`` (all of it: a held-out test set is the
    caller's, kept out of ``data``); write the best epoch's weights to ``out_path``
    (atomically, only at the end) and return the validation report."""
    if data.label_names != config.labels:
        raise ValueError("the data's label names differ from the config's labels")
    train_idx, val_idx = patient_split(data.patient_ids, config.val_fraction, config.seed)
    if len(train_idx) < config.batch_size:
        raise ValueError(f"only {len(train_idx)} training images after the split; the batch "
                         f"size is {config.batch_size}")
    torch.manual_seed(config.seed)
    spec = ClassifierSpec(config.architecture, config.labels, config.input_size)
    classifier = PathologyClassifier(spec).to(device)
    optimiser = torch.optim.Adam(classifier.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.1, patience=1)
    w_pos, w_neg = (w.to(device) for w in balanced_weights(data.targets[train_idx]))
    rng = np.random.default_rng(config.seed)
    augment_rng = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = len(train_idx) // config.batch_size  # drop the last partial batch
    total_steps = steps_per_epoch * config.epochs
    best: tuple[float, int, dict[str, torch.Tensor], EvaluationReport] | None = None
    history: list[dict[str, float]] = []
    val_weights = balanced_weights(data.targets[val_idx])
    for epoch in range(config.epochs):
        classifier.train()
        order = rng.permutation(train_idx)
        losses = []
        for step in range(steps_per_epoch):
            check_cancel(cancel)
            chunk = np.sort(order[step * config.batch_size:(step + 1) * config.batch_size])
            images = data.batch(chunk)
            if config.augment:
                images = augment(images, augment_rng)
            targets = torch.from_numpy(data.targets[chunk].astype(np.float32)).to(device)
            loss = balanced_bce(classifier(images.to(device)), targets, w_pos, w_neg)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            done = epoch * steps_per_epoch + step + 1
            progress(done / total_steps, f"epoch {epoch + 1}/{config.epochs}, "
                                         f"loss {np.mean(losses[-20:]):.4f}")
        report = evaluate(classifier, data, val_idx, device, cancel=cancel)
        val_probs = torch.from_numpy(report.probabilities).clamp(1e-6, 1 - 1e-6)
        val_loss = float(balanced_bce(torch.logit(val_probs),
                                      torch.from_numpy(data.targets[val_idx].astype(np.float32)),
                                      *val_weights))
        scheduler.step(val_loss)
        mean_auc = report.mean_auroc
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                        "val_loss": val_loss, "val_mean_auroc": _json_float(mean_auc)})
        log.info("epoch %d: train loss %.4f, val loss %.4f, val mean AUROC %.4f",
                 epoch + 1, np.mean(losses), val_loss, mean_auc)
        score = -math.inf if math.isnan(mean_auc) else mean_auc
        if best is None or score > best[0]:
            best = (score, epoch + 1, copy.deepcopy(classifier.state_dict()), report)
    assert best is not None
    classifier.load_state_dict(best[2])
    classifier.cpu().eval()
    validation = best[3]  # the best epoch's weights were evaluated when they were made
    split = {"train_images": len(train_idx), "val_images": len(val_idx),
             "train_patients": len(np.unique(data.patient_ids[train_idx])),
             "val_patients": len(np.unique(data.patient_ids[val_idx]))}
    record = {"training_data": data.description,
              "training_data_fingerprint": data.fingerprint,
              "train_config": {**asdict(config), "labels": list(config.labels)},
              "split": split, "best_epoch": best[1], "history": history,
              # per label, positives the network learnt from: 0 means it never saw the
              # finding, and LCO must not be steered by its reading (installed.py)
              "train_positives": {name: int(count) for name, count in zip(
                  config.labels, data.targets[train_idx].sum(axis=0).tolist(), strict=True)},
              "validation": validation.to_json()}
    record.update(provenance or {})
    save_classifier(out_path, classifier, config.name, record)
    return TrainingReport(Path(out_path), validation, best[1], history, split)
