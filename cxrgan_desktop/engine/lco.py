"""Latent class optimisation (LCO): steer an unconditional generator to requested findings.

Segal et al.'s contribution: a GAN trained without labels can still be sampled by label. For
each sample, start from a random latent vector z and run Adam on z to minimise

    sum over specified labels of BCE(classifier(G(z)), wanted)  +  prior_weight * prior(z)

where ``wanted`` is 1 for a finding requested present and 0 for one requested absent; labels
left "don't care" do not enter. ``prior(z)`` is the negative log-density of the norm |z|
under N(0, I), a chi distribution with d degrees of freedom (|z|^2 / 2 - (d - 1) log |z|):
it holds |z| near sqrt(d - 1), where all of the generator's training latents lived, while
leaving the direction free. (The full Gaussian density would pull z towards 0, a point no
training latent was near.)

A sample stops early when every specified label passes its threshold (present: p >= its
threshold, absent: p < its threshold). The two sides have their own thresholds, because
"clearly there" and "clearly not there" are different readings: asking for present at 0.9
should not make 0.6 count as absent. A sample that has not passed after ``steps`` updates is
restarted from a new latent, up to ``restarts`` times. Attempt 0 of sample k starts from
exactly the latent of image k of ``cxrgan generate --seed S`` (``default_rng([S, k])``), so
the "before" image is reproducible; attempt a > 0 starts from ``default_rng([S, k, a])``.

How the work is done (the honest speed-ups, measured by ``tests/benchmarks/bench_lco.py``):
- many samples share each forward and backward pass (a batch of latents);
- a finished sample leaves the batch at once and a waiting one takes its place, so no pass
  is spent on a sample that has already stopped;
- the networks' weights are frozen during LCO: backward computes gradients for z only, not
  the weight gradients that training would need;
- the generator runs as the rendering path's folded network, with each nearest up-sampling
  and 3x3 convolution fused into one stride-2 transposed convolution (16/36 of the work);
- Adam is written per sample (its own step count), so a sample's path does not depend on
  which others share its batch: results are deterministic given the seed.

Progress only moves forward: a sample's share is the part of its evaluation budget
(``(restarts + 1) x (steps + 1)``) it has spent, and 1 once it settles (accepted or out of
attempts). A restart keeps what was spent, so the bar never falls back when an attempt fails.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.classifier.model import PathologyClassifier
from cxrgan_desktop.engine.inference import InferenceGenerator
from cxrgan_desktop.engine.truncation import TruncatedGenerator, check_psi, truncated

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class LCOTarget:
    """What to ask for: findings present, findings absent, the rest don't care.

    ``threshold`` is the probability a present finding must reach; ``absent_threshold`` the
    one an absent finding must stay below (``None``: ``threshold`` too, as every record made
    before the two were separated says). ``thresholds`` overrides either per label (pairs, so
    the target stays hashable); a label is on one side only, so one value per label suffices.
    """

    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    thresholds: tuple[tuple[str, float], ...] = ()
    absent_threshold: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "present", tuple(dict.fromkeys(self.present)))
        object.__setattr__(self, "absent", tuple(dict.fromkeys(self.absent)))
        pairs = self.thresholds.items() if isinstance(self.thresholds, Mapping) \
            else self.thresholds
        object.__setattr__(self, "thresholds", tuple((str(k), float(v)) for k, v in pairs))
        if not self.present and not self.absent:
            raise ValueError("the target specifies no label: ask for at least one finding "
                             "present or absent")
        both = sorted(set(self.present) & set(self.absent))
        if both:
            raise ValueError(f"label(s) {', '.join(both)} requested both present and absent")
        if self.absent_threshold is not None:
            absent = float(self.absent_threshold)
            # one threshold for both sides is the target as it was before the two were
            # separated, and is recorded the same way, whoever builds it
            object.__setattr__(self, "absent_threshold",
                               None if absent == self.threshold else absent)
        sides = [(None, self.threshold)]
        if self.absent_threshold is not None:
            sides.append(("absent findings", self.absent_threshold))
        for name, value in (*sides, *self.thresholds):
            if not 0.0 < value < 1.0:
                what = f"threshold of {name}" if name else "threshold"
                raise ValueError(f"{what} must be between 0 and 1, got {value}")

    @property
    def specified(self) -> tuple[str, ...]:
        return self.present + self.absent

    @property
    def absent_level(self) -> float:
        """What an absent finding must stay below (unless ``thresholds`` names it)."""
        return self.threshold if self.absent_threshold is None else self.absent_threshold

    def threshold_of(self, label: str) -> float:
        own = dict(self.thresholds).get(label)
        if own is not None:
            return own
        return self.absent_level if label in self.absent else self.threshold

    def check_labels(self, labels: Sequence[str]) -> None:
        """Raise ``ValueError`` naming any requested label the classifier does not output."""
        unknown = [name for name in self.specified + tuple(dict(self.thresholds))
                   if name not in labels]
        if unknown:
            raise ValueError(f"the classifier has no label(s) {', '.join(unknown)}; its labels "
                             f"are {', '.join(labels)}")

    def passes(self, probabilities: Mapping[str, float]) -> bool:
        return (all(probabilities[n] >= self.threshold_of(n) for n in self.present)
                and all(probabilities[n] < self.threshold_of(n) for n in self.absent))

    def describe(self) -> str:
        """``Cardiomegaly + Effusion, no Pneumothorax``."""
        parts = []
        if self.present:
            parts.append(" + ".join(self.present))
        if self.absent:
            parts.append("no " + ", no ".join(self.absent))
        return ", ".join(parts)

    def requested(self) -> dict[str, bool]:
        return {**{n: True for n in self.present}, **{n: False for n in self.absent}}

    def to_json(self) -> dict[str, Any]:
        """The record; ``absent_threshold`` only when it differs from ``threshold``'s role,
        so a target made the old way writes the old record (an archive made before the
        change still resumes: its stored plan compares equal)."""
        data: dict[str, Any] = {"present": list(self.present), "absent": list(self.absent),
                                "threshold": self.threshold,
                                "thresholds": dict(self.thresholds)}
        if self.absent_threshold is not None:
            data["absent_threshold"] = self.absent_threshold
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LCOTarget:
        absent_threshold = data.get("absent_threshold")
        return cls(tuple(data.get("present", ())), tuple(data.get("absent", ())),
                   float(data.get("threshold", DEFAULT_THRESHOLD)),
                   tuple(dict(data.get("thresholds", {})).items()),
                   None if absent_threshold is None else float(absent_threshold))


@dataclass(frozen=True)
class LCOSettings:
    steps: int = 200  # Adam updates per attempt before it counts as failed
    learning_rate: float = 0.03
    prior_weight: float = 1.0
    restarts: int = 2  # further attempts from new latents after a failed one
    batch_size: int = 8  # samples optimised together
    snapshot_every: int = 10  # steps between images shown to a watcher (0: none)

    def __post_init__(self) -> None:
        if self.steps < 0 or self.restarts < 0:
            raise ValueError("steps and restarts must not be negative")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if not self.learning_rate > 0:
            raise ValueError("learning rate must be positive")
        if self.prior_weight < 0:
            raise ValueError("prior weight must not be negative")

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "learning_rate": self.learning_rate,
                "prior_weight": self.prior_weight, "restarts": self.restarts,
                "batch_size": self.batch_size}


@dataclass(frozen=True)
class LCORequest:
    """Sample ``index`` of a run seeded ``seed``, aiming at ``target``."""

    index: int
    target: LCOTarget
    seed: int


@dataclass
class LCOResult:
    """One sample's outcome. Probabilities are over all the classifier's labels."""

    request: LCORequest
    success: bool
    attempts: int  # attempts made (1 = the first succeeded or none was allowed after it)
    steps: int  # Adam updates in the final attempt
    evaluations: int  # classifier evaluations spent on this sample, all attempts
    z: np.ndarray  # final latent
    z_start: np.ndarray  # start of the final attempt
    probabilities: np.ndarray
    start_probabilities: np.ndarray
    image: np.ndarray = field(repr=False)  # final image [R, R] in [0, 1]
    image_change: float = 0.0  # mean |final - start| over the final attempt, in [0, 1] units
    judge_probabilities: np.ndarray | None = None
    judge_agrees: bool | None = None
    # per label, the most favourable reading over every evaluation of every attempt (highest
    # for a present label, lowest for an absent one, final for the rest): what a failed
    # sample came closest to, for the advice (see lco_advice)
    best_probabilities: np.ndarray | None = None

    @property
    def index(self) -> int:
        return self.request.index

    @property
    def z_norm_ratio(self) -> float:
        """|z| / sqrt(d): about 1 for a typical N(0, I) latent."""
        return float(np.linalg.norm(self.z) / math.sqrt(self.z.size))


@dataclass(frozen=True)
class Snapshot:
    """An image mid-optimisation, for a watcher (the GUI shows it live)."""

    index: int
    attempt: int
    step: int
    image: np.ndarray
    probabilities: np.ndarray


def start_latent(seed: int, index: int, attempt: int, latent_size: int) -> np.ndarray:
    """Attempt 0: image ``index`` of ``generate --seed seed``; later attempts: fresh ones."""
    key = [seed, index] if attempt == 0 else [seed, index, attempt]
    return np.random.default_rng(key).standard_normal(latent_size).astype(np.float32)


class DifferentiableGenerator(nn.Module):
    """The generator plus its output adapter: z -> [N, 1, R, R] in [0, 1], with gradients.

    ``fused`` (the default, for a model at a finished resolution) runs the rendering path's
    folded, fused network (:meth:`InferenceGenerator.differentiable`): the same function to
    float rounding, with fewer operations. ``fused=False`` runs the training module.
    ``truncation`` is psi (:mod:`cxrgan_desktop.engine.truncation`), inside the pass that is
    differentiated, so that LCO optimises the images it will hand back; psi = 1 builds
    exactly the network it built before.
    """

    def __init__(self, model: LoadedGenerator, fused: bool = True,
                 truncation: float = 1.0) -> None:
        super().__init__()
        self.adapter = model.adapter
        self.latent_size = model.config.latent_size
        self.fused = fused and not model.generator.fading
        self.truncation = check_psi(truncation)
        network: nn.Module = (InferenceGenerator(model.generator) if self.fused
                              else model.generator)
        self.network = truncated(network, model, self.truncation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if isinstance(self.network, TruncatedGenerator) or self.fused:
            raw = self.network.differentiable(z)
        else:
            raw = self.network(z)
        return self.adapter.apply(raw)


def chi_prior(z: torch.Tensor) -> torch.Tensor:
    """Per row: |z|^2 / 2 - (d - 1) log |z| (negative log-density of |z|, up to a constant)."""
    d = z.shape[1]
    norm_sq = (z * z).sum(dim=1)
    return 0.5 * norm_sq - 0.5 * (d - 1) * torch.log(norm_sq)


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Weights without gradients and in eval mode for the duration; restored afterwards."""
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    modes = [(m, m.training) for m in modules]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        for m, _ in modes:
            m.eval()
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.train(mode)


class _Slot:
    """A sample in the active batch: its attempt, Adam state and start image."""

    def __init__(self, row: int, request: LCORequest, attempt: int, z: np.ndarray,
                 evaluations: int) -> None:
        self.row = row
        self.request = request
        self.attempt = attempt
        self.z_start = z
        self.step = 0
        self.evaluations = evaluations
        self.start_image: torch.Tensor | None = None  # on the device: compared at the end
        self.start_probabilities: np.ndarray | None = None


def _target_rows(requests: Sequence[LCORequest], labels: Sequence[str], device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per request: wanted values and a mask of specified labels, ``[N, L]`` each."""
    wanted = torch.zeros(len(requests), len(labels))
    mask = torch.zeros(len(requests), len(labels))
    for row, request in enumerate(requests):
        for name in request.target.present:
            wanted[row, labels.index(name)] = 1.0
            mask[row, labels.index(name)] = 1.0
        for name in request.target.absent:
            mask[row, labels.index(name)] = 1.0
    return wanted.to(device), mask.to(device)


def optimise(model: LoadedGenerator, classifier: PathologyClassifier,
             requests: Sequence[LCORequest], settings: LCOSettings | None = None, *,
             device: torch.device | str = "cpu", progress: ProgressFn = no_progress,
             cancel: threading.Event | None = None,
             on_result: Callable[[LCOResult], None] | None = None,
             on_snapshot: Callable[[Snapshot], None] | None = None,
             fused: bool = True, truncation: float = 1.0) -> list[LCOResult]:
    """Run LCO for every request; results in request order.

    ``on_result`` is called as each sample finishes (success or out of attempts), so a caller
    can write it at once; ``on_snapshot`` receives the first active sample's image every
    ``settings.snapshot_every`` steps. ``fused=False`` differentiates the training module
    instead of the fused network (the benchmark's reference). ``truncation``: psi, applied
    in every pass (1: none). Raises
    :class:`~cxrgan_desktop.core.jobs.Cancelled` when ``cancel`` is set; results already passed to
    ``on_result`` are complete.
    """
    settings = settings or LCOSettings()
    labels = classifier.labels
    for request in requests:
        request.target.check_labels(labels)
    device = torch.device(device)
    generator = DifferentiableGenerator(model, fused, truncation).to(device)
    classifier = classifier.to(device)
    latent_size = generator.latent_size
    threshold = torch.tensor([[r.target.threshold_of(n) for n in labels] for r in requests])
    wanted_all, mask_all = _target_rows(requests, labels, device)
    threshold = threshold.to(device)
    pending: deque[tuple[int, int, int]] = deque((row, 0, 0) for row in range(len(requests)))
    results: dict[int, LCOResult] = {}
    active: list[_Slot] = []
    z = torch.zeros(0, latent_size, device=device)
    m = torch.zeros_like(z)
    v = torch.zeros_like(z)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    total = len(requests)
    budget = (settings.restarts + 1) * (settings.steps + 1)  # evaluations a sample may spend
    highest: dict[int, np.ndarray] = {}  # row -> per-label maximum over all evaluations
    lowest: dict[int, np.ndarray] = {}
    shown = 0.0  # the fraction last reported: never reported lower

    def best_of(row: int) -> np.ndarray:
        wanted = wanted_all[row].cpu().numpy() > 0.5
        return np.where(wanted, highest[row], lowest[row])

    def fill() -> None:
        nonlocal z, m, v
        new = []
        while pending and len(active) + len(new) < settings.batch_size:
            row, attempt, spent = pending.popleft()
            request = requests[row]
            start = start_latent(request.seed, request.index, attempt, latent_size)
            new.append(_Slot(row, request, attempt, start, spent))
        if new:
            active.extend(new)
            fresh = torch.from_numpy(np.stack([s.z_start for s in new])).to(device)
            z = torch.cat([z, fresh])
            m = torch.cat([m, torch.zeros_like(fresh)])
            v = torch.cat([v, torch.zeros_like(fresh)])

    with frozen(generator, classifier):
        fill()
        while active:
            check_cancel(cancel)
            rows = [s.row for s in active]
            wanted, mask, limits = wanted_all[rows], mask_all[rows], threshold[rows]
            z_var = z.detach().requires_grad_(True)
            images = generator(z_var)
            logits = classifier(images)
            bce = F.binary_cross_entropy_with_logits(logits, wanted, reduction="none")
            loss_rows = (bce * mask).sum(dim=1) + settings.prior_weight * chi_prior(z_var)
            (grad,) = torch.autograd.grad(loss_rows.sum(), z_var)
            with torch.no_grad():
                probs = torch.sigmoid(logits)
                ok_present = (probs >= limits) | (wanted < 0.5) | (mask < 0.5)
                ok_absent = (probs < limits) | (wanted > 0.5) | (mask < 0.5)
                passed = (ok_present & ok_absent).all(dim=1).cpu().numpy()
            probs_np = probs.detach().cpu().numpy()
            frames = images.detach()[:, 0]  # copied to the host only where needed
            keep: list[int] = []
            for i, slot in enumerate(active):
                slot.evaluations += 1
                row_probs = probs_np[i]
                highest[slot.row] = np.maximum(highest.get(slot.row, row_probs), row_probs)
                lowest[slot.row] = np.minimum(lowest.get(slot.row, row_probs), row_probs)
                if slot.start_image is None:
                    slot.start_image = frames[i].clone()  # not a view of the batch
                    slot.start_probabilities = probs_np[i]
                if on_snapshot is not None and i == 0 and settings.snapshot_every and (
                        slot.step % settings.snapshot_every == 0 or passed[i]):
                    on_snapshot(Snapshot(slot.request.index, slot.attempt, slot.step,
                                         frames[i].cpu().numpy(), probs_np[i]))
                if passed[i] or slot.step >= settings.steps:
                    retry = not passed[i] and slot.attempt < settings.restarts
                    if retry:
                        pending.appendleft((slot.row, slot.attempt + 1, slot.evaluations))
                        continue
                    result = LCOResult(
                        request=slot.request, success=bool(passed[i]),
                        attempts=slot.attempt + 1, steps=slot.step,
                        evaluations=slot.evaluations, z=z[i].detach().cpu().numpy().copy(),
                        z_start=slot.z_start, probabilities=probs_np[i],
                        start_probabilities=slot.start_probabilities,
                        image=frames[i].cpu().numpy(),
                        image_change=float((frames[i] - slot.start_image).abs().mean()),
                        best_probabilities=np.where(mask_all[slot.row].cpu().numpy() > 0.5,
                                                    best_of(slot.row), probs_np[i]))
                    results[slot.row] = result
                    if on_result is not None:
                        on_result(result)
                    continue
                keep.append(i)
            with torch.no_grad():  # Adam, per sample, on the rows that go on
                index = torch.tensor(keep, dtype=torch.long, device=device)
                g, zk, mk, vk = grad[index], z[index], m[index], v[index]
                steps = torch.tensor([active[i].step + 1 for i in keep], dtype=torch.float32,
                                     device=device).unsqueeze(1)
                mk = beta1 * mk + (1 - beta1) * g
                vk = beta2 * vk + (1 - beta2) * g * g
                m_hat = mk / (1 - beta1 ** steps)
                v_hat = vk / (1 - beta2 ** steps)
                z = zk - settings.learning_rate * m_hat / (v_hat.sqrt() + eps)
                m, v = mk, vk
            active = [active[i] for i in keep]
            for slot in active:
                slot.step += 1
            fill()
            done = len(results)
            spent = (sum(s.evaluations for s in active)
                     + sum(evaluations for _, _, evaluations in pending))
            shown = max(shown, min((done + min(spent / budget, total - done)) / total, 1.0))
            accepted = sum(r.success for r in results.values())
            progress(shown, f"{done}/{total} samples settled, {accepted} accepted")
    return [results[i] for i in range(total)]


def _duration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``2 h 10 min``: as precise as an estimate deserves."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class MonotoneProgress:
    """A progress callback that never moves back and says how long is left.

    LCO's work per sample is unknown in advance (a sample may pass at step 0 or use every
    restart), so the fraction counts settled samples plus the spent part of the others'
    budgets; it is clamped here as well, so that no composition of sub-progress slices can
    show the bar falling. The estimate of the time left is the elapsed time scaled by the
    rate at which that fraction grows, shown once there is something to extrapolate from.
    """

    def __init__(self, progress: ProgressFn,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.progress = progress
        self.clock = clock
        self.started = clock()
        self.fraction = 0.0

    def eta(self) -> float | None:
        """Seconds left, or None while too little is done to say (under 1 % or 2 s)."""
        elapsed = self.clock() - self.started
        if self.fraction < 0.01 or elapsed < 2.0 or self.fraction >= 1.0:
            return None
        return elapsed * (1.0 - self.fraction) / self.fraction

    def __call__(self, fraction: float, message: str = "") -> None:
        self.fraction = max(self.fraction, min(max(fraction, 0.0), 1.0))
        left = self.eta()
        if left is not None:
            message = f"{message}, about {_duration(left)} left" if message \
                else f"about {_duration(left)} left"
        self.progress(self.fraction, message)


@torch.no_grad()
def judge(results: Sequence[LCOResult], judge_classifier: PathologyClassifier,
          device: torch.device | str = "cpu", batch_size: int = 16) -> float:
    """Fill each result's judge probabilities and agreement; return the agreement rate.

    The judge is a second, independently trained classifier. Agreement: the judge also reads
    the requested labels on the final image (each specified label on the right side of its
    threshold). LCO can succeed by fooling its own classifier with patterns invisible to a
    person; such images rarely fool an independent network too.
    """
    if not results:
        return math.nan
    labels = judge_classifier.labels
    for result in results:
        result.request.target.check_labels(labels)
    judge_classifier = judge_classifier.to(device).eval()
    for start in range(0, len(results), batch_size):
        chunk = results[start:start + batch_size]
        images = torch.from_numpy(np.stack([r.image for r in chunk])[:, None]).to(device)
        probs = torch.sigmoid(judge_classifier(images)).cpu().numpy()
        for result, row in zip(chunk, probs, strict=True):
            result.judge_probabilities = row
            result.judge_agrees = result.request.target.passes(dict(zip(labels, row.tolist(),
                                                                        strict=True)))
    return float(np.mean([bool(r.judge_agrees) for r in results]))
