"""Drawing of each planned finding into the phantom's fields (see ``findings.py``).

Why separate from the plan: the plan decides *what* (side, place, size) from the finding's own
seed; these functions decide *how it looks*, in terms of airspace filling (``fill``: a
consolidation or fluid replaces lung air), added density (``density``: a nodule, a pleural
band), extra air (``air_plus``: pneumothorax, bullae, air bronchograms) and vessel visibility.
"""

from __future__ import annotations

import numpy as np

from cxrgan_desktop.imaging.phantom import anatomy as anat
from cxrgan_desktop.imaging.phantom.anatomy import LEFT, RIGHT, mm
from cxrgan_desktop.imaging.phantom.findings import Canvas, Lesion
from cxrgan_desktop.imaging.phantom.raster import (
    band,
    blur,
    polygon_mask,
    smooth_noise,
    splat_polylines,
    upsample,
)


def _sides(lesion: Lesion) -> tuple[int, ...]:
    return (RIGHT, LEFT) if lesion.side == 0 else (lesion.side,)


def _blob(c: Canvas, g: np.random.Generator, center: tuple[float, float], radius: float,
          patchiness: float, cells: int = 48) -> np.ndarray:
    """A smooth irregular blob in [0, 1] (before thresholding): envelope plus noise."""
    X, Y = c.coords()
    noise = upsample(smooth_noise(g, cells, 1.2), c.grid.size)
    d2 = ((X - center[0]) ** 2 + (Y - center[1]) ** 2) / radius**2
    return np.exp(-d2) + patchiness * 0.35 * noise


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def draw_cardiomegaly(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    """Nothing to add: the enlarged heart is in the anatomy."""


def draw_effusion(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    a = c.anatomy
    X, Y = c.coords()
    for side in _sides(lesion):
        w = a.half_width(side)
        cp = a.costophrenic_y(side)
        volume = lesion.params["volume"] * (0.7 if lesion.side == 0 else 1.0)
        level = cp - 0.03 - volume * 0.32 * (cp - a.apex_y)
        lat = side * (X - a.midline)
        rel = np.clip(lat / w, 0, 1)
        # meniscus: the fluid climbs the lateral wall
        surface = level + lesion.params["meniscus"] * (0.05 + 0.1 * volume) * (1 - rel) ** 1.6
        depth = _smoothstep(Y - surface, -0.01, 0.06 + 0.08 * volume)
        wall = anat.wall_half_width(c.anatomy, side, np.clip(Y, a.apex_y, cp))
        inside = _smoothstep(wall + mm(2) - lat, 0, mm(4)) * _smoothstep(lat, 0.05, 0.09)
        below = _smoothstep(cp + 0.03 - Y, 0, 0.02)
        fluid = depth * inside * below
        c.fill = np.maximum(c.fill, fluid * 0.95)


def anat_name(side: int) -> str:
    return "right" if side == RIGHT else "left"


def draw_pneumothorax(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    a = c.anatomy
    side = lesion.side
    collapse = lesion.params["collapse"]
    outline = anat.lung_outline(a, side)
    hx, hy = (a.midline + side * 0.07, a.dome_y(side) - 0.03)
    scale = 1 - collapse
    shrunk = np.column_stack([hx + (outline[:, 0] - hx) * scale, hy + (outline[:, 1] - hy) * scale])
    collapsed = polygon_mask(c.grid.size, shrunk, soften=mm(0.4))
    raw = c.masks[anat_name(side) + "_raw"]
    space = np.clip(raw - collapsed, 0, 1) * c.lung(side) / np.maximum(raw, 1e-3)
    c.air_plus += space * 0.07
    c.vessel_mult *= 1 - space
    edge = 4 * collapsed * (1 - collapsed) * c.lung(side)
    c.density += edge * mm(9)
    c.fill = np.maximum(c.fill, collapsed * c.lung(side) * 0.12 * collapse)


def _sphere(c: Canvas, lesion: Lesion, lobulated: bool) -> None:
    x0, y0 = lesion.center
    r = lesion.radius
    rows, cols, X, Y = c.grid.box(x0 - 1.3 * r, x0 + 1.3 * r, y0 - 1.3 * r, y0 + 1.3 * r)
    dx, dy = X - x0, Y - y0
    d = np.sqrt(dx * dx + dy * dy)
    if lobulated:
        th = np.arctan2(dy, dx)
        p = lesion.params["phase"]
        d = d / (1 + 0.09 * np.cos(3 * th + p[0]) + 0.06 * np.cos(5 * th + p[1])
                 + 0.04 * np.cos(8 * th + p[2]))
    profile = band(d / r, 1.0, c.grid.px / r)
    c.density[rows, cols] += 2 * r * 1.3 * profile


def draw_nodule(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    _sphere(c, lesion, lobulated=False)


def draw_mass(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    _sphere(c, lesion, lobulated=True)


def _bronchograms(c: Canvas, side: int, region: np.ndarray, strength: float) -> None:
    """Air-filled bronchi made visible by the surrounding filled alveoli."""
    t = c.tree
    pick = (t.side == side) & (t.generation >= 1) & (t.generation <= 6)
    if not pick.any():
        return
    radii = t.radii[pick] * 0.55
    air = splat_polylines(c.grid.size, t.segments[pick], 2 * radii, float(np.median(radii)))
    c.air_plus += air / mm(190) * 1.6 * region * strength


def _airspace(c: Canvas, lesion: Lesion, g: np.random.Generator, density: float,
              patchiness: float, sharpness: float) -> np.ndarray:
    blob = _blob(c, g, lesion.center, lesion.radius, patchiness)
    region = _smoothstep(blob, 0.45 - sharpness, 0.45 + sharpness) * c.lung(lesion.side)
    if lesion.params.get("both"):
        mirror = (2 * c.anatomy.midline - lesion.center[0], lesion.center[1] + 0.03)
        other = _blob(c, g, mirror, lesion.radius * 0.8, patchiness)
        region = np.maximum(region, _smoothstep(other, 0.45 - sharpness, 0.45 + sharpness)
                            * c.lung(-lesion.side))
    c.fill = np.maximum(c.fill, region * density)
    return region


def draw_consolidation(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    region = _airspace(c, lesion, g, density=0.78, patchiness=0.7, sharpness=0.22)
    _bronchograms(c, lesion.side, region, 1.0)


def draw_pneumonia(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    region = _airspace(c, lesion, g, density=0.6, patchiness=1.1, sharpness=0.32)
    _bronchograms(c, lesion.side, region, 0.5)


def draw_infiltration(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    _airspace(c, lesion, g, density=0.4, patchiness=1.3, sharpness=0.4)


def draw_atelectasis(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    a = c.anatomy
    side = lesion.side
    w = a.half_width(side)
    segs, weights = [], []
    for _ in range(int(g.integers(1, 4))):
        y = a.dome_y(side) - 0.03 - 0.09 * g.uniform()
        u0 = w * (0.25 + 0.3 * g.uniform())
        length = 0.05 + 0.07 * g.uniform()
        tilt = g.normal(0, 0.015)
        segs.append([a.midline + side * u0, y, a.midline + side * (u0 + length), y + tilt])
        weights.append(1.0)
    plates = splat_polylines(c.grid.size, np.array(segs), np.array(weights), mm(2.5))
    c.fill = np.maximum(c.fill, np.clip(plates, 0, 1) * 0.6 * c.lung(side))
    if lesion.params.get("wedge"):
        X, Y = c.coords()
        lat = side * (X - a.midline)
        base_y = a.dome_y(side) + 0.02
        # collapsed lower lobe: a wedge beside the heart, widening towards the diaphragm
        outside = _smoothstep(lat - 0.6 * (base_y - Y), 0.0, 0.02)
        tri = (1 - outside) * _smoothstep(Y, a.hilum_y + 0.05, a.hilum_y + 0.1)
        c.fill = np.maximum(c.fill, tri * c.lung(side) * 0.8)


def draw_edema(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    a = c.anatomy
    X, Y = c.coords()
    haze = np.zeros_like(c.fill)
    for side in (RIGHT, LEFT):
        hx = a.midline + side * (a.mediastinum_half_width + 0.03)
        d2 = ((X - hx) / 0.17) ** 2 + ((Y - a.hilum_y - 0.02) / 0.2) ** 2
        haze += np.exp(-d2) * c.lung(side)
    noise = upsample(smooth_noise(g, 64, 1.0), c.grid.size)
    c.fill = np.maximum(c.fill, np.clip(haze * (0.6 + 0.15 * noise), 0, 1) * 0.75)
    segs = []
    for side in (RIGHT, LEFT):
        cp = a.costophrenic_y(side)
        for _ in range(10):
            y = cp - 0.02 - 0.13 * g.uniform()
            wall = float(anat.wall_half_width(a, side, y))
            length = mm(10 + 12 * g.uniform())
            segs.append([a.midline + side * (wall + mm(1)), y,
                         a.midline + side * (wall - length), y + g.normal(0, 0.002)])
    lines = splat_polylines(c.grid.size, np.array(segs), np.full(len(segs), mm(1.6)), mm(0.6))
    c.density += lines * c.lung(0) * 1.4


def draw_emphysema(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    t = c.tree
    c.vessel_weight *= np.where(t.generation >= 4, 0.45, 0.9).astype(np.float32)
    X, Y = c.coords()
    a = c.anatomy
    for i in range(lesion.params["bullae"]):
        side = lesion.params["side"] if i == 0 else -lesion.params["side"]
        cx = a.midline + side * a.half_width(side) * (0.5 + 0.2 * g.uniform())
        cy = a.apex_y + 0.06 + 0.05 * g.uniform()
        r = 0.03 + 0.03 * g.uniform()
        d = np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) / r
        inside = np.clip(1 - d, 0, 1) ** 0.5 * c.lung(side)
        c.air_plus += inside * 0.18
        c.vessel_mult *= 1 - np.clip(1.3 * (1 - d), 0, 1) * c.lung(side)
        c.density += band((d - 1) * r, mm(0.7), c.grid.px) * mm(2) * c.lung(side)


def draw_fibrosis(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    a = c.anatomy
    X, Y = c.coords()
    n = upsample(smooth_noise(g, 192, 0.8), c.grid.size)
    net = np.exp(-((n / 0.3) ** 2))
    zone = np.zeros_like(c.fill)
    for side in (RIGHT, LEFT):
        lat = side * (X - a.midline) / a.half_width(side)
        basal = np.clip((Y - a.hilum_y) / (a.dome_y(side) - a.hilum_y), 0, 1)
        zone += c.lung(side) * np.clip(lat - 0.35, 0, 1) * 1.6 * (0.35 + 0.65 * basal)
    c.fill = np.maximum(c.fill, net * np.clip(zone, 0, 1) * 0.3)


def draw_pleural_thickening(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    a = c.anatomy
    side = lesion.side
    t = lesion.params["thickness"]
    X, Y = c.coords()
    lat = side * (X - a.midline)
    cp = a.costophrenic_y(side)
    wall = anat.wall_half_width(a, side, np.clip(Y, a.apex_y, cp))
    inward = wall - lat
    rim = _smoothstep(inward, -mm(2), 0) * (1 - _smoothstep(inward, t * 0.7, t * 1.3))
    if lesion.params["apical"]:
        zone = 1 - _smoothstep(Y, a.apex_y + 0.05, a.apex_y + 0.1)
        rim = np.maximum(rim, (1 - _smoothstep(Y - a.apex_y, t, 2 * t)) * 0.9)
    else:
        zone = _smoothstep(Y, a.apex_y + 0.12, a.apex_y + 0.2)
    c.fill = np.maximum(c.fill, rim * zone * c.lung(side) * 0.95)
    c.density += blur(rim * zone * c.masks[anat_name(side) + "_raw"], mm(1)) * mm(8)


def draw_hernia(c: Canvas, lesion: Lesion, g: np.random.Generator) -> None:
    """Hiatal hernia: stomach above the diaphragm behind the heart, gas over fluid."""
    x0, y0 = lesion.center
    r = lesion.radius
    rows, cols, X, Y = c.grid.box(x0 - r, x0 + r, y0 - r, y0 + r)
    d2 = ((X - x0) / r) ** 2 + ((Y - y0) / (0.8 * r)) ** 2
    thick = 2 * r * np.sqrt(np.clip(1 - d2, 0, None))
    level = y0 + 0.1 * r
    gas = np.clip((level - Y) / max(mm(1), c.grid.px), 0, 1)  # sharp air-fluid level
    rim = band(np.sqrt(d2) * r - r, mm(2.5), c.grid.px)
    c.density[rows, cols] += thick * (1 - gas) * 0.5 + rim * mm(6)
    c.air_plus[rows, cols] += thick * gas / mm(215) * 1.8


def draw_lesion(c: Canvas, lesion: Lesion) -> None:
    """Draw one planned finding into the canvas fields (``draw_<finding>`` below)."""
    draw = globals()["draw_" + lesion.finding.lower()]
    draw(c, lesion, np.random.default_rng(lesion.seed))
