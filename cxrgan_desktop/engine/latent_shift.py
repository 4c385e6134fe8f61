"""Latent shift: the same image with a finding growing in or fading out.

After Cohen et al., "Gifsplanation via Latent Shift" (MIDL 2021): moving a latent code along
the gradient of a classifier's output adds or removes what the classifier reads. Here the
code is the generator's own z (no encoder is needed: the start is a generated image, or a
latent found by projection), and the output is the classifier's *logit* for one finding
(the probability's gradient vanishes where the classifier is sure; the logit's does not).

Geometry. The generator's first step is ``pixel_norm(z)``, so only z's direction matters; a
step that changed |z| would change nothing, and Cohen's ``z + lambda * grad`` would mix a
useful turn with a useless stretch. The gradient is therefore projected onto the sphere's
tangent plane at z0 and normalised, and frame k is z0 turned by the angle ``lambda_k``
(degrees) along that great circle, so |z| stays |z0| (and so does its percentile under the
prior, which is why a change of the |z| percentile, as the issue first proposed, would be
zero for every frame and cannot describe the step). Each frame reports instead its angle from
z0 and the percentile of that angle among the angles between z0 and random prior draws
(:func:`~cxrgan_desktop.engine.interpolation.angle_percentile`): near 0 the frame is still
"this image"; near 50 it is as far from z0 as an unrelated sample.

Two ways to follow the gradient:

- ``recompute_gradient=False`` (the default, and Cohen et al.'s method): the gradient is
  taken once, at z0, and every frame lies on that one great circle. One backward pass.
- ``recompute_gradient=True``: the direction is taken again at every step of at most
  ``max_step_deg`` (and at least at every frame), walking outwards from z0 on each side:
  a path that bends with the classifier's field, at the cost of a backward pass per step.
  ``lambda`` is then the arc length walked, and a frame's angle from z0 can be smaller.

Every frame records every label's probability, read from the frame's rendered image, so
what else changes along the path (entanglement) is visible.

Truncation (psi, :mod:`cxrgan_desktop.engine.truncation`): the gradient is taken through the
truncated generator (LCO's :class:`~cxrgan_desktop.engine.lco.DifferentiableGenerator` at
that psi) and every frame is rendered at that psi, so a truncated image's sliders move that
image, along the direction its own pixels give the classifier. psi = 1 is the untruncated
network, bit for bit. At psi 0 every latent renders the mean image: every gradient is exactly
zero, and a shift is refused with that reason.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import chi

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress, sub_progress
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.interpolation import (
    LatentPath,
    _vector,
    classifier_module,
    render_frames,
    rotate_towards,
    tangent_direction,
)
from cxrgan_desktop.engine.lco import DifferentiableGenerator, frozen
from cxrgan_desktop.engine.render import Renderer
from cxrgan_desktop.engine.truncation import check_psi

DEFAULT_MAX_STEP_DEG = 2.0
COHEN_METHOD = ("single direction: the gradient at the start latent, taken once (Cohen et "
                "al., MIDL 2021, 'Gifsplanation via Latent Shift')")
RECOMPUTED_METHOD = "recomputed direction: the gradient taken again at every step"
LAMBDA_UNIT = ("degrees of arc along the sphere |z| = |z0| (pixel norm makes only z's "
               "direction matter)")


@dataclass
class ShiftPath(LatentPath):
    """A latent shift's frames; ``direction`` is the single direction used (None when it
    was recomputed at every step)."""

    finding: str = ""
    direction: np.ndarray | None = field(default=None, repr=False)
    gradient_evaluations: int = 0


def _movable_psi(truncation: float) -> float:
    """psi, refused at 0 with the reason (every latent is the mean image there, so every
    gradient is exactly zero: "no direction" would not say why)."""
    psi = check_psi(truncation)
    if psi == 0.0:
        raise ValueError("at truncation psi 0 every latent renders the same mean image: there "
                         "is no direction to shift along (use a psi above 0)")
    return psi


def _lambdas(values: Sequence[float]) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError("give at least one lambda")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"lambdas must be finite, got {out}")
    span = max(abs(v) for v in out) or 1.0
    return [0.0 if abs(v) < 1e-9 * span else v for v in out]  # linspace's -1e-15 is 0


def shift_path(model: LoadedGenerator, classifier: Any, finding: str, z0: np.ndarray,
               lambdas: Sequence[float], *, recompute_gradient: bool = False,
               max_step_deg: float = DEFAULT_MAX_STEP_DEG, device: torch.device | str = "cpu",
               truncation: float = 1.0, progress: ProgressFn = no_progress,
               cancel: threading.Event | None = None) -> ShiftPath:
    """Frames of ``z0`` turned by each ``lambdas[k]`` degrees along the gradient of the
    classifier's logit for ``finding`` (negative: against it), in the order given.

    ``classifier``: a ``LoadedClassifier`` or a ``PathologyClassifier``. ``truncation``:
    psi, for the gradient and every frame (see the module). A frame at lambda 0 is z0
    itself, rendered alone: its image equals ``Renderer(model, truncation=psi).render(z0)``
    exactly. Raises ``ValueError`` for an unknown finding, a latent of the wrong size, or a
    zero gradient; :class:`~cxrgan_desktop.core.jobs.Cancelled` when ``cancel`` is set.
    """
    network = classifier_module(classifier)
    index = network.label_index(finding)
    values = _lambdas(lambdas)
    psi = _movable_psi(truncation)
    if not max_step_deg > 0:
        raise ValueError(f"max_step_deg must be positive, got {max_step_deg}")
    size = model.config.latent_size
    start = _vector(z0, "z0")
    if start.size != size:
        raise ValueError(f"z0 must have {size} values for this model, got {start.size}")
    start32 = np.asarray(z0, dtype=np.float32).reshape(-1).copy()
    device = torch.device(device)
    generator = DifferentiableGenerator(model, truncation=psi).to(device)
    network = network.to(device)
    evaluations = 0

    def direction_at(z: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        check_cancel(cancel)
        z_var = torch.from_numpy(np.asarray(z, dtype=np.float32)[None]).to(device)
        z_var.requires_grad_(True)
        logit = network(generator(z_var))[0, index]
        (gradient,) = torch.autograd.grad(logit, z_var)
        evaluations += 1
        return tangent_direction(z, gradient[0].double().cpu().numpy())

    walk = sub_progress(progress, 0.0, 0.5 if recompute_gradient else 0.05)
    with frozen(generator, network):
        if recompute_gradient:
            latents = _walk(start32, values, direction_at, math.radians(max_step_deg), walk)
            direction = None
        else:
            direction = direction_at(start32)
            latents = [rotate_towards(start32, direction, math.radians(v)) for v in values]
        walk(1.0, "direction found")
    renderer = Renderer(model, device, truncation=psi)
    frames = render_frames(model, latents, network, renderer, start32, values, truncation=psi,
                           progress=sub_progress(progress, 0.5 if recompute_gradient else 0.05,
                                                 1.0), cancel=cancel)
    norm = float(np.linalg.norm(start))
    method = {
        "finding": finding,
        "direction": RECOMPUTED_METHOD if recompute_gradient else COHEN_METHOD,
        "recompute_gradient": recompute_gradient,
        "objective": f"the classifier's logit for {finding} (positive lambda: up the "
                     "gradient, towards the finding; negative: away from it)",
        "lambda_unit": LAMBDA_UNIT,
        "max_step_deg": max_step_deg if recompute_gradient else None,
        "gradient_evaluations": evaluations,
        "z_norm": norm,
        "z_norm_percentile": float(100.0 * chi.cdf(norm, size)),
        "z_norm_note": "constant along the path: every frame keeps |z| = |z0|",
    }
    return ShiftPath("shift", "lambda_deg", start32, frames, tuple(network.labels), method,
                     truncation=psi, finding=finding, direction=direction,
                     gradient_evaluations=evaluations)


def _walk(start: np.ndarray, values: list[float], direction_at: Any, max_step: float,
          progress: ProgressFn) -> list[np.ndarray]:
    """Latents at arc lengths ``values`` (degrees) walked outwards from ``start`` on each
    side, the direction taken again at every step of at most ``max_step`` radians."""
    radius = float(np.linalg.norm(start.astype(np.float64)))
    found: dict[float, np.ndarray] = {0.0: start.copy()}
    plan = []  # per side: (target in degrees, steps to it from the previous target)
    for sign in (1.0, -1.0):
        travelled, side = 0.0, []
        for target in sorted({abs(v) for v in values if v * sign > 0}):
            goal = math.radians(target)
            side.append((target, max(1, math.ceil((goal - travelled) / max_step - 1e-9))))
            travelled = goal
        plan.append((sign, side))
    total = sum(steps for _, side in plan for _, steps in side) or 1
    done = 0
    for sign, side in plan:
        current, travelled = start.copy(), 0.0
        for target, steps in side:
            step = (math.radians(target) - travelled) / steps
            for _ in range(steps):
                tangent = sign * direction_at(current)
                moved = rotate_towards(current, tangent, step).astype(np.float64)
                current = (moved * (radius / np.linalg.norm(moved))).astype(np.float32)
                done += 1
                progress(done / total, f"{done}/{total} gradient steps")
            travelled = math.radians(target)
            found[sign * target] = current.copy()
    return [found[v].copy() for v in values]


def preview_model(model: LoadedGenerator, levels: int = 1) -> LoadedGenerator:
    """The model as it renders ``levels`` growth stages below its resolution (half size
    for 1): the same pass stopped early, through that stage's own to-image layer, for a
    slider's quick preview. A copy: the model itself is left at its depth (another thread
    may be rendering with it).

    The earlier stage's to-image layer stopped training when the next stage had faded in,
    while the blocks before it trained on, so the preview can differ from the full image
    downsampled; ``tests/benchmarks/bench_latent.py`` measures by how much. On the demo model
    it differs a lot (mean |difference| 0.23, against 0.08 between two different latents'
    images: right structure, wrong contrast) and saves little (x1.3 at 64 px, x1.5 at 1024
    px on a CPU): check a model before using it for previews.
    """
    generator = model.generator
    depth = generator.current_depth
    if not 1 <= levels <= depth:
        raise ValueError(f"levels must be between 1 and {depth} for a {model.resolution} px "
                         f"model, got {levels}")
    if generator.fading:
        raise ValueError("the model is in the middle of a fade-in: no finished lower stage")
    smaller = copy.deepcopy(generator)
    smaller.set_depth(depth - levels)
    return dataclasses.replace(model, generator=smaller, discriminator_state=None)


def finding_directions(model: LoadedGenerator, classifier: Any, findings: Sequence[str],
                       z0: np.ndarray, *, device: torch.device | str = "cpu",
                       truncation: float = 1.0) -> dict[str, np.ndarray]:
    """The single (Cohen) direction of each finding at ``z0``: the unit tangent of its
    logit's gradient (through the generator truncated by psi ``truncation``), one forward
    pass and one backward pass per finding.

    For a window with one slider per finding: taken once when an image is opened, after
    which any slider position is :func:`combine_shifts` (no further gradient).
    """
    network = classifier_module(classifier)
    indices = {name: network.label_index(name) for name in findings}
    size = model.config.latent_size
    start = _vector(z0, "z0")
    if start.size != size:
        raise ValueError(f"z0 must have {size} values for this model, got {start.size}")
    device = torch.device(device)
    generator = DifferentiableGenerator(model, truncation=_movable_psi(truncation)).to(device)
    network = network.to(device)
    out = {}
    with frozen(generator, network):
        z_var = torch.from_numpy(np.asarray(z0, dtype=np.float32).reshape(1, -1)).to(device)
        z_var.requires_grad_(True)
        logits = network(generator(z_var))[0]
        for k, (name, index) in enumerate(indices.items()):
            (gradient,) = torch.autograd.grad(logits[index], z_var,
                                              retain_graph=k < len(indices) - 1)
            out[name] = tangent_direction(start, gradient[0].double().cpu().numpy())
    return out


def combine_shifts(z0: np.ndarray, directions: dict[str, np.ndarray],
                   lambdas_deg: dict[str, float]) -> np.ndarray:
    """``z0`` moved by several sliders at once, float32, |z| kept.

    The tangent vector sum over findings of lambda_f (radians) * u_f is followed along the
    sphere's great circle (the exponential map), so one slider alone gives exactly the frame
    :func:`shift_path` renders at that lambda, and all sliders at 0 give z0 bit for bit. The
    findings' directions are not orthogonal in general: two sliders at 5 degrees turn z by
    between 0 and 10 degrees.
    """
    tangent = np.zeros(np.asarray(z0).size, dtype=np.float64)
    moved = False
    for name, value in lambdas_deg.items():
        if value:
            if name not in directions:
                raise ValueError(f"no direction for {name!r}; there are directions for "
                                 f"{', '.join(directions) or 'none'}")
            tangent += math.radians(float(value)) * directions[name]
            moved = True
    if not moved:
        return np.asarray(z0, dtype=np.float32).reshape(-1).copy()
    angle = float(np.linalg.norm(tangent))
    if angle == 0.0:
        return np.asarray(z0, dtype=np.float32).reshape(-1).copy()
    return rotate_towards(z0, tangent / angle, angle)
