"""Drawing primitives in normalised coordinates for the chest phantom.

Why a module of its own: every anatomical structure is described in normalised image
coordinates (x to the right, y down, both in [0, 1]) so that one seed gives the same patient
at every output size; these helpers turn such descriptions into pixels at a given size,
anti-aliased, and fast enough for about a second per 1024 x 1024 image. Features narrower
than a pixel keep their integrated density (they get fainter, not lost), so small renders
stay faithful to the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage


@dataclass(frozen=True)
class Grid:
    """Pixel-centre coordinates of a ``size`` x ``size`` image, in normalised units."""

    size: int

    @property
    def px(self) -> float:
        """One pixel in normalised units."""
        return 1.0 / self.size

    def coords(self) -> np.ndarray:
        """Pixel-centre coordinates along one axis, float32."""
        return ((np.arange(self.size, dtype=np.float32) + 0.5) / self.size).astype(np.float32)

    def box(self, x0: float, x1: float, y0: float, y1: float
            ) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        """Pixel slices covering a normalised box (clipped to the image) and their coordinates.

        Returns ``(rows, cols, X, Y)`` with ``X``, ``Y`` broadcastable (1 x w and h x 1).
        """
        n = self.size
        c0 = int(np.clip(np.floor(x0 * n), 0, n))
        c1 = int(np.clip(np.ceil(x1 * n), 0, n))
        r0 = int(np.clip(np.floor(y0 * n), 0, n))
        r1 = int(np.clip(np.ceil(y1 * n), 0, n))
        c = self.coords()
        return slice(r0, r1), slice(c0, c1), c[None, c0:c1], c[r0:r1, None]


def smooth_closed_curve(points: np.ndarray, samples_per_segment: int = 12) -> np.ndarray:
    """A closed Catmull-Rom spline through control points (K x 2) -> (K * s) x 2 vertices.

    Anatomical outlines are smooth; a spline through a dozen landmarks gives that without
    hand-placing hundreds of vertices.
    """
    p = np.asarray(points, dtype=np.float64)
    p0, p1, p2, p3 = np.roll(p, 1, 0), p, np.roll(p, -1, 0), np.roll(p, -2, 0)
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[None, :, None]
    t2, t3 = t * t, t * t * t
    out = 0.5 * (
        2 * p1[:, None]
        + (-p0 + p2)[:, None] * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3)[:, None] * t2
        + (-p0 + 3 * p1 - 3 * p2 + p3)[:, None] * t3
    )
    return out.reshape(-1, 2)


def smooth_open_curve(points: np.ndarray, samples_per_segment: int = 12) -> np.ndarray:
    """An open Catmull-Rom spline through control points, ending exactly on the last one."""
    p = np.asarray(points, dtype=np.float64)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
    out.append(p[-1:])
    return np.vstack(out)


def _supersampling(size: int) -> int:
    return int(np.clip(1024 // size, 1, 4))


def polygon_mask(size: int, vertices: np.ndarray, soften: float = 0.0) -> np.ndarray:
    """Anti-aliased coverage (float32 in [0, 1]) of a polygon given in normalised coordinates.

    ``soften`` is an extra Gaussian edge blur in normalised units (anatomical edges are
    curved surfaces seen tangentially, never razor sharp). Drawn supersampled and blurred by
    PIL in C, which is several times faster than doing the same in numpy.
    """
    ss = _supersampling(size)
    big = size * ss
    canvas = Image.new("L", (big, big), 0)
    pts = [(float(x) * big, float(y) * big) for x, y in np.asarray(vertices)]
    ImageDraw.Draw(canvas).polygon(pts, fill=255)
    if ss > 1:
        canvas = canvas.reduce(ss)
    radius = soften * size
    if radius >= 0.5:
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius))
    return np.array(canvas, dtype=np.float32) * np.float32(1.0 / 255.0)


def _reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Box-downsample a float image by an integer factor (PIL, in C)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F")
                      .reduce(factor), dtype=np.float32)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with ``sigma`` in normalised units (a large sigma runs on a coarser grid)."""
    size = image.shape[0]
    sigma_px = sigma * size
    if sigma_px < 0.3:
        return image
    factor = 1
    while sigma_px / (factor * 2) >= 3 and size // (factor * 2) >= 32:
        factor *= 2
    if factor > 1:
        small = ndimage.gaussian_filter(_reduce(image, factor), sigma_px / factor,
                                        mode="nearest", truncate=3.0)
        return upsample(small, size)
    return ndimage.gaussian_filter(image.astype(np.float32), sigma_px, mode="nearest", truncate=3.0)


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Linear interpolation weights (n_out x n_in) between cell-centred grids on [0, 1]."""
    pos = (np.arange(n_out) + 0.5) / n_out * n_in - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def upsample(field: np.ndarray, size: int) -> np.ndarray:
    """Resample a coarse square field to ``size`` x ``size`` (bilinear, cell-centred).

    Coarse random fields are drawn at a fixed resolution and resampled, so textures depend on
    the seed only and not on the output size.
    """
    if field.shape[0] == size:
        return field.astype(np.float32)
    if size < field.shape[0]:
        m = _interp_matrix(field.shape[0], size)
        n = _interp_matrix(field.shape[1], size)
        return (m @ field.astype(np.float32) @ n.T).astype(np.float32)
    image = Image.fromarray(np.ascontiguousarray(field, dtype=np.float32), mode="F")
    return np.array(image.resize((size, size), Image.BILINEAR), dtype=np.float32)


def smooth_noise(rng: np.random.Generator, cells: int, smooth: float = 1.0) -> np.ndarray:
    """A zero-mean, unit-variance random field on a ``cells`` x ``cells`` grid."""
    field = rng.standard_normal((cells, cells)).astype(np.float32)
    if smooth > 0:
        field = ndimage.gaussian_filter(field, smooth, mode="wrap")
    field -= field.mean()
    field /= field.std() + 1e-6
    return field


def band(distance: np.ndarray, half_width: float, px: float) -> np.ndarray:
    """Projected density across a tube of radius ``half_width`` at signed ``distance``.

    The profile is that of a cylinder (sqrt(1 - d^2)). A tube thinner than a pixel is widened
    to a pixel with its peak lowered, so its integrated density is preserved.
    """
    eff = max(half_width, 0.75 * px)
    d = distance * (1.0 / eff)
    out = np.sqrt(np.clip(1.0 - d * d, 0.0, None))
    if eff > half_width:
        out *= half_width / eff
    return out


def splat_polylines(
    size: int, segments: np.ndarray, weights: np.ndarray, sigma: float
) -> np.ndarray:
    """Additively draw line segments (M x 4: x0, y0, x1, y1) as Gaussian-profile lines.

    ``weights`` (M) is the peak value of each line before blurring relative to a line of
    width ``sigma`` (so the peak after blurring is about ``weight``). Points are deposited
    every half pixel with bilinear weights and blurred once, which costs the same for a
    thousand vessels as for one.
    """
    sigma_px = max(sigma * size, 0.6)
    # wide lines are deposited on a coarser grid, blurred there and resampled
    factor = 1
    while sigma_px / (factor * 2) >= 2.5 and size // (factor * 2) >= 32:
        factor *= 2
    n = size // factor
    canvas = np.zeros(n * n, dtype=np.float64)
    if len(segments) == 0:
        return np.zeros((size, size), dtype=np.float32)
    seg = np.asarray(segments, dtype=np.float64) * n
    lengths = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])
    steps = np.maximum(np.ceil(lengths / 0.5).astype(int), 1)
    index = np.repeat(np.arange(len(seg)), steps)
    starts = np.cumsum(steps) - steps
    t = (np.arange(index.size) - np.repeat(starts, steps) + 0.5) / np.repeat(steps, steps)
    x = seg[index, 0] + (seg[index, 2] - seg[index, 0]) * t - 0.5
    y = seg[index, 1] + (seg[index, 3] - seg[index, 1]) * t - 0.5
    w = np.asarray(weights, dtype=np.float64)[index] * (lengths[index] / steps[index])
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                       (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
        canvas += np.bincount(yi[ok] * n + xi[ok], weights=(w * wt)[ok], minlength=n * n)
    image = ndimage.gaussian_filter(canvas.reshape(n, n).astype(np.float32), sigma_px / factor,
                                    truncate=3.0)
    # A line of unit linear density blurred by sigma peaks at 1 / (sqrt(2 pi) sigma). Scaling
    # by the nominal sigma (not the clamped one) keeps the density of sub-pixel lines.
    image *= np.float32(np.sqrt(2 * np.pi) * sigma * n)
    return upsample(image, size) if factor > 1 else image
