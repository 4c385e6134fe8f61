"""Pulmonary vessel markings: branching trees from each hilum.

Why: the lung markings of a chest radiograph are the pulmonary vessels, thick at the hila and
tapering to invisibility in the outer third of the lung. Their absence peripherally is how a
pneumothorax is recognised, their prominence how congestion is, so they are grown as trees
(in normalised coordinates, from the anatomy's random stream) and drawn by width class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrgan_desktop.imaging.phantom.anatomy import LEFT, RIGHT, Anatomy, mm
from cxrgan_desktop.imaging.phantom.raster import splat_polylines

# radius classes (normalised) and the blur used to draw each
_CLASSES = ((mm(4.0), np.inf), (mm(1.8), mm(4.0)), (0.0, mm(1.8)))


@dataclass(frozen=True)
class VesselTree:
    """Segments (M x 4: x0, y0, x1, y1), radii (M), generation (M) and side (M, -1 or +1)."""

    segments: np.ndarray
    radii: np.ndarray
    generation: np.ndarray
    side: np.ndarray


def hilum(a: Anatomy, side: int) -> tuple[float, float]:
    """Image position of the hilum on ``side`` (the left one a little higher)."""
    right_border = a.cardiac_width * a.heart_right_fraction
    lateral = max(a.mediastinum_half_width + mm(28), 0.55 * right_border + mm(22))
    if side == LEFT:
        lateral = a.mediastinum_half_width + mm(32)
    y = a.hilum_y - (0.012 if side == LEFT else 0.0)
    return a.midline + side * lateral, y


def grow_trees(a: Anatomy, lung: np.ndarray, rng: np.random.Generator) -> VesselTree:
    """Grow both vessel trees inside ``lung`` (a coarse lung mask, any square resolution).

    Branches that leave the lung, or get thinner than half a millimetre, stop.
    """
    res = lung.shape[0]

    def inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        i = np.clip((y * res).astype(int), 0, res - 1)
        j = np.clip((x * res).astype(int), 0, res - 1)
        ok = (x > 0) & (x < 1) & (y > 0) & (y < 1)
        return ok & (lung[i, j] > 0.5)

    segs, radii, gens, sides = [], [], [], []
    for side in (RIGHT, LEFT):
        hx, hy = hilum(a, side)
        # trunks: upper lobe (up and out), middle / lingula (out), lower lobe (down and out)
        base = np.deg2rad(np.array([-100, -65, -20, 15, 50, 80]) + rng.normal(0, 6, 6))
        angle = np.where(side == LEFT, base, np.pi - base)
        n = angle.size
        x = np.full(n, hx) + side * mm(6)
        y = np.full(n, hy) + np.array([-0.02, -0.01, 0, 0.01, 0.02, 0.03])
        r = mm(np.array([5.0, 4.5, 4.2, 4.2, 6.5, 6.0])) * a.vessel_scale
        length = np.full(n, 0.038)
        for gen in range(12):
            if x.size == 0:
                break
            bend = rng.normal(0, 0.22, x.size)
            x1 = x + np.cos(angle + bend) * length
            y1 = y + np.sin(angle + bend) * length
            ok = inside(x1, y1)
            segs.append(np.column_stack([x, y, x1, y1])[ok])
            radii.append(r[ok])
            gens.append(np.full(ok.sum(), gen))
            sides.append(np.full(ok.sum(), side))
            x, y, r, angle, length = x1[ok], y1[ok], r[ok], (angle + bend)[ok], length[ok]
            keep = r > mm(0.6)
            x, y, r, angle, length = x[keep], y[keep], r[keep], angle[keep], length[keep]
            m = x.size
            spread = np.deg2rad(rng.uniform(18, 38, m))
            split = rng.uniform(0.35, 0.65, m)
            x = np.concatenate([x, x])
            y = np.concatenate([y, y])
            angle = np.concatenate([angle - spread * split, angle + spread * (1 - split)])
            ratio = rng.uniform(0.72, 0.84, m)
            r = np.concatenate([r * ratio, r * (1.45 - ratio)])
            length = np.concatenate([length, length]) * rng.uniform(0.78, 0.92, 2 * m)
    if not segs:
        empty = np.zeros((0, 4))
        return VesselTree(empty, np.zeros(0), np.zeros(0, int), np.zeros(0, int))
    return VesselTree(
        np.concatenate(segs), np.concatenate(radii), np.concatenate(gens), np.concatenate(sides)
    )


def draw_vessels(size: int, tree: VesselTree, weight: np.ndarray | None = None) -> np.ndarray:
    """Projected vessel density: about the vessel diameter (normalised) at each centre line.

    ``weight`` (per segment) scales individual segments (e.g. zero where a pneumothorax
    removed the lung, or more for upper-zone vessels in congestion).
    """
    out = np.zeros((size, size), dtype=np.float32)
    w_all = 2.0 * tree.radii if weight is None else 2.0 * tree.radii * weight
    for lo, hi in _CLASSES:
        pick = (tree.radii >= lo) & (tree.radii < hi)
        if not pick.any():
            continue
        sigma = float(np.median(tree.radii[pick])) * 0.8
        out += splat_polylines(size, tree.segments[pick], w_all[pick], sigma)
    return out
