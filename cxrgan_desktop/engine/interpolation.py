"""Paths through the latent space: the sphere's geometry, spherical interpolation, frames.

The generator starts with ``pixel_norm(z)`` (:mod:`cxrgan_desktop.engine.pggan`), so only the
direction of z decides the image: scaling z changes nothing. Every path here therefore moves
on a sphere, and its natural measure is the *angle* between latents, not a distance or a
change of |z| (which would be zero or meaningless). How far a frame has gone is reported as
its angle from the path's start, in degrees, and as the percentile of that angle among the
angles between the start and random prior draws z ~ N(0, I): 0 means closer to the start than
practically any other sample, 50 means as far as a typical other sample (about 90 degrees in
high dimension). That percentile is exact: for a fixed unit vector and g ~ N(0, I_d), the
cosine c of their angle has (1 + c) / 2 ~ Beta((d - 1) / 2, (d - 1) / 2).

Spherical interpolation (Shoemake's slerp; White, "Sampling Generative Networks", 2016, for
GANs) keeps intermediate latents at the radius the prior puts its mass on, where a straight
line between two N(0, I) draws would pass through the atypically short vectors near 0.

Truncation (psi, :mod:`cxrgan_desktop.engine.truncation`) reaches every frame: a path at psi
renders each latent exactly as ``Renderer(model, truncation=psi)`` does, so a truncated
gallery image's path starts from that very image (psi = 1 is the untruncated renderer, bit
for bit as before truncation existed).

Each frame is rendered alone, exactly as a single-latent ``Renderer.render`` renders it:
oneDNN's convolutions give results that depend, in the last bits, on the batch's size
(measured on the demo model: up to 3e-6), and the path's end frames must equal the plain
render of their latents exactly.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.special import betainc

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.render import Renderer
from cxrgan_desktop.engine.truncation import check_psi

# Below this angle two latents are the same direction for slerp's purposes (sin -> 0).
_PARALLEL_RAD = 1e-7


def _vector(z: np.ndarray | Sequence[float], what: str = "latent") -> np.ndarray:
    array = np.asarray(z, dtype=np.float64)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be one vector, got shape {np.shape(z)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    if not np.linalg.norm(array) > 0:
        raise ValueError(f"{what} is the zero vector: it has no direction")
    return array


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """The angle between two latents in radians, in [0, pi] (stable near 0 and pi)."""
    u, v = _vector(a), _vector(b)
    if u.shape != v.shape:
        raise ValueError(f"latents of different sizes: {u.size} and {v.size}")
    return _stable_angle(u / np.linalg.norm(u), v / np.linalg.norm(v))


def _stable_angle(u: np.ndarray, v: np.ndarray) -> float:
    """2 atan2(|u - v|, |u + v|) for unit u, v: accurate at every angle (Kahan)."""
    return float(2.0 * math.atan2(np.linalg.norm(u - v), np.linalg.norm(u + v)))


def angle_percentile(angle_deg: float | np.ndarray, latent_size: int) -> float | np.ndarray:
    """Percentile (0-100) of ``angle_deg`` among the angles between a fixed latent and
    random draws z ~ N(0, I_d): the exact distribution (see the module), not a sample."""
    if latent_size < 2:
        raise ValueError(f"angles need a latent of at least 2 dimensions, got {latent_size}")
    theta = np.deg2rad(np.clip(np.asarray(angle_deg, dtype=np.float64), 0.0, 180.0))
    half = (latent_size - 1) / 2.0
    # P(angle <= theta) = P(c >= cos theta) = I_{(1 - cos theta) / 2}(half, half)
    result = 100.0 * betainc(half, half, (1.0 - np.cos(theta)) / 2.0)
    return float(result) if np.ndim(result) == 0 else result


def slerp(z_a: np.ndarray, z_b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from ``z_a`` (t = 0) to ``z_b`` (t = 1), float32.

    The direction moves along the great circle at a constant angular speed; the length
    moves linearly from |z_a| to |z_b| (constant when they are equal, as for two draws
    rescaled alike), so |z| never dips towards 0 as on a straight line. The endpoints are
    returned bit for bit (t = 0 gives ``z_a``'s values), so they render exactly as the
    plain generate of those latents. ``t`` outside [0, 1] extrapolates along the circle.
    Opposite latents have no unique great circle between them: refused.
    """
    a, b = _vector(z_a, "z_a"), _vector(z_b, "z_b")
    if a.shape != b.shape:
        raise ValueError(f"latents of different sizes: {a.size} and {b.size}")
    t = float(t)
    if not math.isfinite(t):
        raise ValueError(f"t must be finite, got {t}")
    if t == 0.0:
        return np.asarray(z_a, dtype=np.float32).reshape(-1).copy()
    if t == 1.0:
        return np.asarray(z_b, dtype=np.float32).reshape(-1).copy()
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    u, v = a / norm_a, b / norm_b
    omega = _stable_angle(u, v)
    if math.pi - omega < _PARALLEL_RAD:
        raise ValueError("the two latents point in opposite directions: no unique great "
                         "circle joins them")
    if omega < _PARALLEL_RAD:
        direction = u
    else:
        direction = (math.sin((1.0 - t) * omega) * u + math.sin(t * omega) * v) \
            / math.sin(omega)
    length = (1.0 - t) * norm_a + t * norm_b
    return (length * direction / np.linalg.norm(direction)).astype(np.float32)


def rotate_towards(z: np.ndarray, tangent: np.ndarray, angle_rad: float) -> np.ndarray:
    """``z`` moved by ``angle_rad`` along the great circle leaving it in direction
    ``tangent`` (a unit vector orthogonal to z), keeping |z|; float32. Angle 0 returns z's
    own values, bit for bit."""
    base = _vector(z)
    if angle_rad == 0.0:
        return np.asarray(z, dtype=np.float32).reshape(-1).copy()
    moved = math.cos(angle_rad) * base + math.sin(angle_rad) * np.linalg.norm(base) * tangent
    return moved.astype(np.float32)


def tangent_direction(z: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """The unit vector of ``gradient`` projected onto the sphere's tangent plane at ``z``.

    Pixel norm makes G scale-invariant, so its gradient is already nearly tangent (measured
    on the demo model: |cos(g, z)| < 1e-7); the projection removes the rest, so a step
    changes only the direction of z. A zero (or purely radial) gradient has no direction:
    refused.
    """
    base = _vector(z)
    unit = base / np.linalg.norm(base)
    g = np.asarray(gradient, dtype=np.float64).reshape(-1)
    tangent = g - (g @ unit) * unit
    norm = np.linalg.norm(tangent)
    # float32 rounding of a purely radial gradient leaves about 1e-7 of it tangent
    if not norm > 1e-6 * np.linalg.norm(g) or not math.isfinite(norm):
        raise ValueError("the gradient is zero (or not finite) here: no direction to move in")
    return tangent / norm


@dataclass
class PathFrame:
    """One frame of a path: where it is, how far from the start, what it shows."""

    index: int
    position: float  # lambda in degrees (shift) or t in [0, 1] (interpolation)
    z: np.ndarray = field(repr=False)  # float32 [latent_size]
    angle_deg: float  # angle from the path's start latent
    angle_percentile: float  # of that angle among start-to-prior-draw angles (0-100)
    image: np.ndarray = field(repr=False)  # [R, R] float32 in [0, 1]
    probabilities: np.ndarray | None = None  # [labels], sigmoid of the classifier


@dataclass
class LatentPath:
    """Frames along a path, with what made them (written beside the frames as path.json).

    ``position_name`` says what a frame's ``position`` is: ``"lambda_deg"`` for a shift,
    ``"t"`` for an interpolation. ``labels`` is empty when no classifier read the frames.
    ``truncation``: the psi every frame was rendered with (1: none).
    """

    kind: str
    position_name: str
    start: np.ndarray = field(repr=False)
    frames: list[PathFrame]
    labels: tuple[str, ...] = ()
    method: dict[str, Any] = field(default_factory=dict)
    truncation: float = 1.0

    @property
    def latents(self) -> np.ndarray:
        return np.stack([f.z for f in self.frames]).astype(np.float32)

    @property
    def images(self) -> np.ndarray:
        return np.stack([f.image for f in self.frames])

    @property
    def positions(self) -> np.ndarray:
        return np.array([f.position for f in self.frames], dtype=np.float64)

    @property
    def probabilities(self) -> np.ndarray | None:
        """[frames, labels], or None when no classifier read the frames."""
        if not self.labels:
            return None
        return np.stack([f.probabilities for f in self.frames])

    def probability(self, label: str) -> np.ndarray:
        if label not in self.labels:
            raise ValueError(f"no probabilities for {label!r}; the path's labels are "
                             f"{', '.join(self.labels) or 'none (no classifier)'}")
        return self.probabilities[:, self.labels.index(label)]


def classifier_module(classifier: Any) -> torch.nn.Module:
    """The network of a loaded classifier (``LoadedClassifier``) or the network itself."""
    return getattr(classifier, "classifier", classifier)


def render_frames(model: LoadedGenerator, latents: Sequence[np.ndarray], classifier: Any,
                  renderer: Renderer, start: np.ndarray, positions: Sequence[float], *,
                  truncation: float = 1.0, progress: ProgressFn = no_progress,
                  cancel: threading.Event | None = None) -> list[PathFrame]:
    """Render each latent alone (see the module), read it with the classifier (if any).

    ``truncation`` is the psi the frames are meant to have; ``renderer`` must render at that
    psi (``Renderer(model, device, truncation=psi)``): a mismatch is refused rather than
    leaving frames whose images disagree with what their path records.
    """
    psi = check_psi(truncation)
    if renderer.truncation != psi:
        raise ValueError(f"the renderer truncates with psi {renderer.truncation:g}, the frames "
                         f"are asked for at psi {psi:g}")
    network = classifier_module(classifier) if classifier is not None else None
    if network is not None:
        network = network.to(renderer.device).eval()
    size = model.config.latent_size
    frames = []
    for k, (z, position) in enumerate(zip(latents, positions, strict=True)):
        check_cancel(cancel)
        image = renderer.render(np.asarray(z, dtype=np.float32)[None])
        probabilities = None
        if network is not None:
            with torch.inference_mode():
                probabilities = torch.sigmoid(network(image.to(renderer.device))) \
                    .float().cpu().numpy()[0]
        angle = math.degrees(angle_between(start, z))
        frames.append(PathFrame(k, float(position), np.asarray(z, dtype=np.float32), angle,
                                float(angle_percentile(angle, size)), image[0, 0].numpy(),
                                probabilities))
        progress((k + 1) / len(latents), f"{k + 1}/{len(latents)} frames")
    return frames


def interpolation_path(model: LoadedGenerator, z_a: np.ndarray, z_b: np.ndarray,
                       frames: int, classifier: Any = None, *,
                       device: torch.device | str = "cpu", truncation: float = 1.0,
                       progress: ProgressFn = no_progress,
                       cancel: threading.Event | None = None) -> LatentPath:
    """``frames`` latents from ``z_a`` to ``z_b`` by :func:`slerp` at evenly spaced t,
    rendered (truncated by psi ``truncation``), and read by ``classifier`` when one is given
    (every label's probability).

    The first and last frames are ``z_a`` and ``z_b`` themselves, so their images equal the
    plain generates of those latents at that psi exactly.
    """
    psi = check_psi(truncation)
    if frames < 2:
        raise ValueError(f"an interpolation needs at least 2 frames, got {frames}")
    size = model.config.latent_size
    a, b = _vector(z_a, "z_a"), _vector(z_b, "z_b")
    if a.size != size or b.size != size:
        raise ValueError(f"latents must have {size} values for this model, got {a.size} and "
                         f"{b.size}")
    ts = [k / (frames - 1) for k in range(frames)]
    latents = [slerp(z_a, z_b, t) for t in ts]
    renderer = Renderer(model, device, truncation=psi)
    labels = tuple(classifier_module(classifier).labels) if classifier is not None else ()
    start = np.asarray(z_a, dtype=np.float32).reshape(-1)
    total = math.degrees(angle_between(z_a, z_b))
    rendered = render_frames(model, latents, classifier, renderer, start, ts,
                             truncation=psi, progress=progress, cancel=cancel)
    return LatentPath("interpolation", "t", start, rendered, labels, {
        "method": "spherical linear interpolation (slerp) of the direction, linear "
                  "interpolation of |z|, t evenly spaced in [0, 1]",
        "end": np.asarray(z_b, dtype=np.float32).reshape(-1).tolist(),
        "total_angle_deg": total,
        "total_angle_percentile": float(angle_percentile(total, size)),
    }, truncation=psi)
