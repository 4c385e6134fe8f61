"""Training the re-identification embedding on images labelled only by patient.

Loss: supervised contrastive (Khosla et al., NeurIPS 2020), temperature 0.1, on batches of P
patients x K images. Why not batch-hard triplets (Hermans et al., 2017): a triplet uses one
positive and one negative per anchor, and from a random start batch-hard mining is known to
collapse every embedding onto one point; the contrastive loss takes every pair of the batch
at once (each image against all K - 1 views of its patient and all other patients' images),
which trains stably from scratch with small batches on a CPU, and it optimises exactly the
score the audit uses, cosine similarity. Packhaeuser et al.'s Siamese pair loss asks the same
question one pair at a time.

Sampling: each epoch deals the training patients, shuffled, into batches of P; a patient
gives K of its images (drawn without replacement when it has K, all of them plus repeats
otherwise). A patient with one image still takes part: its K views are augmented copies of
that image, which is what a memorised training image looks like.

Augmentation, what a copy of a patient's radiograph may undergo between two acquisitions or
inside a generator: a shift of a few pixels (up to 6 % of the width), a rotation up to
5 degrees, a zoom within 5 %, a linear window/level change (gain 0.8-1.25, offset +-0.1),
Gaussian noise (sigma up to 0.03) and, half of the time, a blur by down- and upsampling
(factor 1.5-3). No flip: a mirrored chest is no copy of a patient.

Validation is patient-wise (``classifier.data.patient_split``): the held-out figures are on
patients the network never saw. The weights kept are the last epoch's, not the best epoch's
by held-out AUROC, so the recorded figure is not selected on the data that measures it.
Deterministic on a CPU for a seed and a thread count.

Measured (the defaults: compact backbone, 64 px, 30 epochs, seed 0, one CPU thread, 262 s):
on 300 phantom patients of 4 images each (``cxrgan phantom --images-per-patient 4``, seed 11),
the 60 held-out patients' verification AUROC is 0.9948 (untrained 0.6930; 32 px pixel
correlation, the audit's pixel space, 0.6910) and precision@1 0.871 (untrained 0.204, pixel
correlation 0.171). Packhaeuser et al. report 0.994 and 0.996 on ChestX-ray14 at 256 px.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.engine.classifier.data import patient_split
from cxrgan_desktop.engine.reid.evaluation import (
    MAX_NEGATIVES,
    ReidEvaluation,
    evaluate_embeddings,
    verification_pairs,
)
from cxrgan_desktop.engine.reid.model import DEFAULT_WIDTHS, ReidNet, ReidSpec

log = logging.getLogger(__name__)


class ReidImages(Protocol):
    """What training reads: images by index and a patient id per image (the classifier's
    ``LabelledImages`` fits, and so does :class:`TensorImages`)."""

    patient_ids: np.ndarray

    def __len__(self) -> int: ...

    def batch(self, indices: np.ndarray) -> torch.Tensor: ...

    @property
    def description(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...


class TensorImages:
    """Images held in memory ``[N, 1, H, W]`` in [0, 1] with patient ids (tests, scripts)."""

    def __init__(self, images: torch.Tensor, patient_ids: np.ndarray | list[int],
                 description: str = "images in memory") -> None:
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"expected [N, 1, H, W] images, got {tuple(images.shape)}")
        self.images = images.float().contiguous()
        self.patient_ids = np.asarray(patient_ids, dtype=np.int64)
        if len(self.patient_ids) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.patient_ids)} patient ids")
        self._description = f"{len(images)} {description}"

    def __len__(self) -> int:
        return len(self.patient_ids)

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        return self.images[torch.as_tensor(np.asarray(indices, dtype=np.int64))]

    @property
    def description(self) -> str:
        return self._description

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.images.numpy().tobytes())
        digest.update(self.patient_ids.tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class ReidTrainConfig:
    input_size: int = 64
    backbone: str = "compact"
    embedding_dim: int = 128
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    epochs: int = 30
    patients_per_batch: int = 16
    images_per_patient: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    val_fraction: float = 0.2
    seed: int = 0
    augment: bool = True
    max_negatives: int = MAX_NEGATIVES

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.patients_per_batch < 2 or self.images_per_patient < 2:
            raise ValueError("a batch needs at least 2 patients (negatives) and 2 images per "
                             "patient (positives)")
        if not self.temperature > 0 or not self.lr > 0:
            raise ValueError("temperature and learning rate must be positive")
        if self.max_negatives < 1:
            raise ValueError("max_negatives must be at least 1")
        self.spec()  # validates the architecture

    def spec(self) -> ReidSpec:
        return ReidSpec(self.input_size, self.embedding_dim, self.backbone, self.widths)


@dataclass
class ReidTrainingReport:
    path: Path
    validation: ReidEvaluation
    untrained: ReidEvaluation  # the same held-out figures before any training step
    history: list[dict[str, Any]]
    split: dict[str, int]
    provenance: dict[str, Any] = field(repr=False, default_factory=dict)


def supervised_contrastive(embeddings: torch.Tensor, labels: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """Khosla et al.'s L_out: per anchor, the mean over its positives of
    ``-log softmax(similarity / T)`` taken over every other image of the batch; mean over
    the anchors that have a positive."""
    sims = embeddings @ embeddings.T / temperature
    n = sims.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=sims.device)
    sims = sims.masked_fill(self_mask, -math.inf)
    log_prob = sims - torch.logsumexp(sims, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positive.sum(dim=1)
    anchors = counts > 0
    per_anchor = -(log_prob.masked_fill(~positive, 0.0).sum(dim=1)[anchors]
                   / counts[anchors])
    return per_anchor.mean()


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Copy-like changes of ``[B, 1, R, R]`` images in [0, 1] (see the module docstring)."""
    n, _, size, _ = images.shape

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    angle = uniform(-5.0, 5.0) * math.pi / 180.0
    scale = uniform(0.95, 1.05)
    shift_x, shift_y = uniform(-0.12, 0.12), uniform(-0.12, 0.12)  # of the half-width: 6 %
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1),
                         torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta.to(images), [n, 1, size, size], align_corners=False)
    x = F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                      align_corners=False)
    blur = torch.rand(n, generator=generator) < 0.5
    factors = uniform(1.5, 3.0)
    if blur.any():
        blurred = []
        for k in torch.nonzero(blur).flatten().tolist():
            small = max(4, round(size / float(factors[k])))
            down = F.interpolate(x[k:k + 1], size=(small, small), mode="bilinear",
                                 align_corners=False, antialias=True)
            blurred.append(F.interpolate(down, size=(size, size), mode="bilinear",
                                         align_corners=False))
        x = x.clone()
        x[blur] = torch.cat(blurred)
    gain = uniform(0.8, 1.25).view(n, 1, 1, 1)
    offset = uniform(-0.1, 0.1).view(n, 1, 1, 1)
    sigma = uniform(0.0, 0.03).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator) * sigma
    return (x * gain.to(x) + offset.to(x) + noise.to(x)).clamp(0.0, 1.0)


def pk_batches(patient_ids: np.ndarray, indices: np.ndarray, patients_per_batch: int,
               images_per_patient: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of batches over images ``indices``: shuffled patients dealt P at a time
    (the remainder dropped, unless there are fewer than P patients in all), K images each.
    Each batch is image indices ``[P * K]``, a patient's K images together."""
    ids = patient_ids[indices]
    order = np.argsort(ids, kind="stable")
    bounds = np.flatnonzero(np.diff(ids[order])) + 1
    groups = [indices[g] for g in np.split(order, bounds)]
    shuffled = rng.permutation(len(groups))
    per_batch = min(patients_per_batch, len(groups))
    batches = []
    for start in range(0, len(groups) - per_batch + 1, per_batch):
        chosen = []
        for g in shuffled[start:start + per_batch]:
            members = groups[g]
            if len(members) >= images_per_patient:
                take = rng.choice(members, images_per_patient, replace=False)
            else:
                extra = rng.choice(members, images_per_patient - len(members), replace=True)
                take = np.concatenate([rng.permutation(members), extra])
            chosen.append(take)
        batches.append(np.concatenate(chosen))
    return batches


@torch.no_grad()
def embed_images(network: ReidNet, data: ReidImages, indices: np.ndarray,
                 device: torch.device, batch_size: int = 64,
                 cancel: threading.Event | None = None) -> np.ndarray:
    """Embeddings ``[len(indices), D]`` float32 in eval mode (batch-norm running statistics)."""
    was_training = network.training
    network.eval()
    out = []
    for start in range(0, len(indices), batch_size):
        check_cancel(cancel)
        images = data.batch(indices[start:start + batch_size]).to(device)
        out.append(network(images).float().cpu().numpy())
    network.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, network.spec.embedding_dim), np.float32)


def train_reid_network(config: ReidTrainConfig, data: ReidImages, out_path: str | Path, *,
                       device: torch.device, provenance: dict[str, Any] | None = None,
                       progress: ProgressFn = no_progress,
                       cancel: threading.Event | None = None) -> ReidTrainingReport:
    """Train on a patient-wise split of ``data``; write the file (atomically, at the end)
    with the held-out verification AUROC and precision@1 in its provenance.

    Raises ``ValueError`` when no patient has two images (nothing to learn a patient from)
    or the split leaves fewer than two training patients.
    """
    from cxrgan_desktop.engine.reid.files import save_reid

    ids = np.asarray(data.patient_ids, dtype=np.int64)
    _, counts = np.unique(ids, return_counts=True)
    if len(counts) == 0 or counts.max() < 2:
        raise ValueError(f"no patient has two or more of the {len(ids)} images; "
                         "re-identification learns a patient from their follow-up images")
    train_idx, val_idx = patient_split(ids, config.val_fraction, config.seed)
    if len(np.unique(ids[train_idx])) < 2:
        raise ValueError("the patient-wise split leaves fewer than two training patients")
    torch.manual_seed(config.seed)
    network = ReidNet(config.spec()).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    augment_rng = torch.Generator().manual_seed(config.seed)
    val_ids = ids[val_idx]
    pairs = verification_pairs(val_ids, config.max_negatives, config.seed)  # one set, every epoch

    def held_out() -> ReidEvaluation:
        embeddings = embed_images(network, data, val_idx, device, cancel=cancel)
        return evaluate_embeddings(embeddings, val_ids, max_negatives=config.max_negatives,
                                   seed=config.seed, cancel=cancel, pairs=pairs)

    untrained = held_out()
    steps_per_epoch = len(pk_batches(ids, train_idx, config.patients_per_batch,
                                     config.images_per_patient, np.random.default_rng(0)))
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total)
    history: list[dict[str, Any]] = []
    report = untrained
    for epoch in range(config.epochs):
        network.train()
        losses = []
        batches = pk_batches(ids, train_idx, config.patients_per_batch,
                             config.images_per_patient, rng)
        for step, chunk in enumerate(batches):
            check_cancel(cancel)
            images = data.batch(chunk)
            if config.augment:
                images = augment(images, augment_rng)
            labels = torch.from_numpy(ids[chunk]).to(device)
            loss = supervised_contrastive(network(images.to(device)), labels,
                                          config.temperature)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            losses.append(loss.item())
            done = epoch * steps_per_epoch + step + 1
            progress(done / total, f"epoch {epoch + 1}/{config.epochs}, "
                                   f"loss {np.mean(losses[-20:]):.4f}")
        report = held_out()
        history.append({"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 6),
                        **{f"val_{k}": v for k, v in report.to_json().items()
                           if k in ("verification_auroc", "precision_at_1")}})
        log.info("epoch %d: loss %.4f, held-out verification AUROC %.4f, precision@1 %.4f",
                 epoch + 1, np.mean(losses), report.verification_auroc, report.precision_at_1)
    network.cpu().eval()
    split = {"train_images": len(train_idx), "val_images": len(val_idx),
             "train_patients": len(np.unique(ids[train_idx])),
             "val_patients": len(np.unique(val_ids))}
    record: dict[str, Any] = {
        "training_data": data.description, "training_data_fingerprint": data.fingerprint,
        "images": len(ids), "patients": len(counts), "epochs": config.epochs,
        "train_config": {**asdict(config), "widths": list(config.widths)},
        "split": split, "history": history,
        "validation": report.to_json(), "untrained_validation": untrained.to_json(),
        "verification_auroc": report.to_json()["verification_auroc"],
        "precision_at_1": report.to_json()["precision_at_1"]}
    record.update(provenance or {})
    save_reid(out_path, network, record)
    return ReidTrainingReport(Path(out_path), report, untrained, history, split, record)
