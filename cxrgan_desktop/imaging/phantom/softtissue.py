"""Soft tissues and air of the phantom outside the lungs' own markings.

Why a module of its own: these are the densities a radiologist reads as "the rest of the
film" (airway, hila, aorta, arms, breasts, abdomen with its bowel gas, the lung's gradient
from apex to base) and each is a few lines of geometry; keeping them here lets ``render``
stay a short composition of fields. Every function returns a thickness field in normalised
units (water equivalent), added to or subtracted from the attenuation map.
"""

from __future__ import annotations

import numpy as np

from cxrgan_desktop.imaging.phantom.anatomy import LEFT, RIGHT, Anatomy, mm
from cxrgan_desktop.imaging.phantom.raster import (
    Grid,
    band,
    blur,
    smooth_noise,
    splat_polylines,
    upsample,
)
from cxrgan_desktop.imaging.phantom.vessels import hilum


def _polyline(points: list[tuple[float, float]]) -> np.ndarray:
    return np.array([(*points[i], *points[i + 1]) for i in range(len(points) - 1)])


def trachea(size: int, a: Anatomy) -> np.ndarray:
    """Air in the trachea (a midline column bowed slightly right by the aortic arch), ending
    at the carina, and the two main bronchi: the right short and steep, the left long and
    more horizontal, passing under the aortic arch (normalised air thickness, ~1 inside)."""
    c = a.midline + a.trachea_shift
    carina = a.hilum_y - 0.045
    knob = a.hilum_y - 0.09
    segs = _polyline([(c, -0.02), (c, knob - 0.05), (c - 0.006, knob), (c - 0.002, carina)])
    rx, ry = hilum(a, RIGHT)
    lx, ly = hilum(a, LEFT)
    right = _polyline([(c - 0.002, carina), (c - 0.02, carina + 0.025), (rx + 0.03, ry - 0.01)])
    left = _polyline([(c - 0.002, carina), (c + 0.03, carina + 0.03), (lx - 0.025, ly + 0.012)])
    air = splat_polylines(size, segs, np.full(len(segs), 1.0), mm(6.5))
    air += splat_polylines(size, np.vstack([right, left]), np.full(4, 0.45), mm(4.5))
    return air


def hila(size: int, a: Anatomy) -> np.ndarray:
    """The hilar shadows: the pulmonary arteries. On the right the interlobar artery runs down
    beside the right atrium; on the left the artery arches over the left main bronchus, so
    the left hilum is a little higher."""
    rx, ry = hilum(a, RIGHT)
    lx, ly = hilum(a, LEFT)
    c, m = a.midline, a.mediastinum_half_width
    right = _polyline([(c - m, ry - 0.01), (rx + 0.012, ry - 0.025), (rx - 0.004, ry + 0.01),
                       (rx + 0.006, ry + 0.05), (rx + 0.016, ry + 0.09)])
    upper = _polyline([(rx + 0.012, ry - 0.025), (rx - 0.01, ry - 0.06)])
    left = _polyline([(c + m + 0.01, ly - 0.005), (lx - 0.012, ly - 0.035), (lx + 0.006, ly),
                      (lx + 0.002, ly + 0.045), (lx - 0.006, ly + 0.085)])
    segs = np.vstack([right, upper, left])
    weights = np.array([1.0, 1.0, 0.9, 0.7, 0.6, 1.0, 0.9, 0.8, 0.6])
    arteries = splat_polylines(size, segs, weights, mm(5.0)) * a.vessel_scale
    return arteries * mm(16)


def descending_aorta(grid: Grid, a: Anatomy) -> np.ndarray:
    """The descending aorta, a tube left of the spine from the knob to the diaphragm; its
    left edge shows faintly through the heart against the retrocardiac lung."""
    c, m = a.midline, a.mediastinum_half_width
    knob_y = a.hilum_y - 0.09
    top_x = c + m + 0.6 * a.aortic_knob - mm(12)
    rows, cols, X, Y = grid.box(c - 0.02, top_x + 0.05, knob_y, a.dome_left_y + 0.05)
    t = np.clip((Y - knob_y) / (a.dome_left_y + 0.03 - knob_y), 0, 1)
    axis = top_x + (c + mm(14) - top_x) * t ** 0.7
    out = np.zeros((grid.size, grid.size), dtype=np.float32)
    out[rows, cols] = band(X - axis, mm(12), grid.px) * np.clip((Y - knob_y) / 0.03, 0, 1)
    return out * mm(22)


def arm_zone(grid: Grid, a: Anatomy) -> np.ndarray:
    """1 lateral to the chest wall's skin (where only an arm or shoulder can be), else 0."""
    X, Y = grid.coords()[None, :], grid.coords()[:, None]
    lat = np.abs(X - a.midline)
    skin = np.where(a.midline > X, a.thorax_half_width_right, a.thorax_half_width_left)
    out = np.clip((lat - skin - a.body_margin) / 0.05, 0, 1) + 0 * Y
    return out.astype(np.float32)


def abdomen(grid: Grid, a: Anatomy) -> np.ndarray:
    """Below the domes: bone contrast is lower there (thicker tissue, more scatter)."""
    Y = grid.coords()[:, None]
    below = np.clip((Y - (a.dome_right_y + a.dome_left_y) / 2 - 0.03) / 0.06, 0, 1)
    return (below + 0 * Y.T).astype(np.float32)


def bowel_gas(grid: Grid, a: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Mottled gas in the colon (hepatic and splenic flexures) below the domes."""
    n = upsample(smooth_noise(rng, 40, 1.0), grid.size)
    fine = upsample(smooth_noise(rng, 160, 0.8), grid.size)
    X, Y = grid.coords()[None, :], grid.coords()[:, None]
    top = np.where(a.midline > X, a.dome_right_y, a.dome_left_y) + 0.09
    zone = np.clip((Y - top) / 0.06, 0, 1) * np.clip(1 - np.abs(X - a.midline) / 0.33, 0, 1)
    gas = np.clip(n - 0.7, 0, 1.2) * (0.7 + 0.3 * np.clip(fine + 0.5, 0, 2))
    return (blur(gas, mm(2)) * zone).astype(np.float32) * mm(28)


def breasts(grid: Grid, a: Anatomy) -> np.ndarray:
    """Soft-tissue density of the breasts over the lower zones (female patients)."""
    out = np.zeros((grid.size, grid.size), dtype=np.float32)
    if not a.female:
        return out
    for side in (RIGHT, LEFT):
        cx = a.midline + side * a.half_width(side) * 0.62
        cy = a.dome_y(side) - 0.02
        rows, cols, X, Y = grid.box(cx - 0.25, cx + 0.25, cy - 0.2, cy + 0.16)
        d = ((X - cx) / 0.2) ** 2 + ((Y - cy) / 0.13) ** 2
        dome = np.sqrt(np.clip(1 - d, 0, None)) * (0.4 + 0.6 * np.clip((Y - cy + 0.13) / 0.2, 0, 1))
        out[rows, cols] += dome
    return blur(out, mm(4)) * mm(45)


def gastric_bubble(grid: Grid, a: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Air in the gastric fundus under the left hemidiaphragm, with a flat fluid level."""
    out = np.zeros((grid.size, grid.size), dtype=np.float32)
    r = 0.025 + 0.02 * rng.uniform()
    cx = a.midline + 0.12 + 0.04 * rng.uniform()
    cy = a.dome_left_y + 0.035 + r * 0.6
    rows, cols, X, Y = grid.box(cx - r, cx + r, cy - r, cy + r)
    d = ((X - cx) / r) ** 2 + ((Y - cy) / (0.8 * r)) ** 2
    level = cy + 0.2 * r
    below = np.clip((level - Y) / max(mm(1.5), grid.px), 0, 1)
    out[rows, cols] = np.sqrt(np.clip(1 - d, 0, None)) * below
    return out * mm(60)


def lung_gradient(grid: Grid, a: Anatomy, lungs: np.ndarray) -> np.ndarray:
    """Overlying chest-wall tissue over the lungs: least at the apices and the lateral
    periphery, most at the bases (pectoral muscles, diaphragmatic slope)."""
    X, Y = grid.coords()[None, :], grid.coords()[:, None]
    dome = 0.5 * (a.dome_right_y + a.dome_left_y)
    vertical = np.clip((Y - a.apex_y) / (dome - a.apex_y), 0, 1.1)
    lat = np.abs(X - a.midline) / a.half_width(RIGHT)
    periphery = np.clip((lat - 0.55) / 0.4, 0, 1) ** 2
    return lungs * (mm(16) * (vertical - 0.45) - mm(10) * periphery)
