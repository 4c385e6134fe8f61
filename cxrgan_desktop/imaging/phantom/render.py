"""Compose the phantom: anatomy and findings -> a processed PA chest radiograph.

Why this shape: every structure contributes a projected thickness (soft tissue, lung air,
bone, vessels, fluid, lesions) to one attenuation map; a monotone display curve and a mild
large-radius unsharp mask (as modern CXR processing applies) turn it into the image. Working
in attenuation makes overlaps behave like a radiograph: a rib is fainter over the heart than
over lung, a consolidation hides the vessels inside it, a pneumothorax is darker than lung.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from cxrgan_desktop.imaging.phantom import anatomy as anat
from cxrgan_desktop.imaging.phantom import findings as fnd
from cxrgan_desktop.imaging.phantom.anatomy import LEFT, RIGHT, Anatomy, mm
from cxrgan_desktop.imaging.phantom.raster import (
    Grid,
    blur,
    polygon_mask,
    smooth_noise,
    splat_polylines,
    upsample,
)
from cxrgan_desktop.imaging.phantom.skeleton import (
    draw_clavicles,
    draw_ribs,
    draw_shoulders,
    draw_spine,
)
from cxrgan_desktop.imaging.phantom.vessels import VesselTree, draw_vessels, grow_trees, hilum

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 16, 1024
_COARSE = 128  # resolution of the masks used to grow vessels and place lesions

# densities in "normalised thickness of water" per unit of each field
_BODY = mm(230)  # full soft-tissue thickness at the centre of the chest
_AIR = mm(215)  # deepest lung
_BONE = mm(26)  # bone field value 1 ~ 26 mm of water
_TRACHEA = mm(32)


@dataclass(frozen=True)
class RenderedPhantom:
    """The image and the ground truth behind it (for tests, bounding boxes, manifests)."""

    image: np.ndarray  # [size, size] float32 in [0, 1]
    anatomy: Anatomy  # after the findings' changes (e.g. the enlarged heart)
    findings: frozenset[str]
    lesions: tuple[fnd.Lesion, ...]


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(
            f"phantom size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}")


def lung_masks(size: int, a: Anatomy, soften: float = 0.0) -> dict[str, np.ndarray]:
    """Masks at ``size``: each hemithorax air space, the heart, the mediastinum, the body."""
    heart = polygon_mask(size, anat.heart_outline(a), soften)
    med = polygon_mask(size, anat.mediastinum_outline(a), soften)
    out = {"heart": heart, "mediastinum": med}
    cut = (1 - heart) * (1 - med)
    for side, name in ((RIGHT, "right"), (LEFT, "left")):
        raw = polygon_mask(size, anat.lung_outline(a, side), soften)
        out[f"{name}_raw"] = raw
        out[name] = raw * cut
    return out


def _trachea(size: int, a: Anatomy) -> np.ndarray:
    """Air in the trachea and main bronchi (normalised air thickness)."""
    c = a.midline + a.trachea_shift
    carina = a.hilum_y - 0.045
    knob = a.hilum_y - 0.09
    pts = [(c, -0.02), (c, knob - 0.05), (c - 0.006, knob), (c - 0.002, carina)]
    segs = [(*pts[i], *pts[i + 1]) for i in range(len(pts) - 1)]
    rx, ry = hilum(a, RIGHT)
    lx, ly = hilum(a, LEFT)
    bronchi = [(c - 0.002, carina, rx + 0.012, ry - 0.005),
               (c - 0.002, carina, lx - 0.01, ly + 0.01)]
    air = splat_polylines(size, np.array(segs), np.full(len(segs), 1.0), mm(7.5))
    air += splat_polylines(size, np.array(bronchi), np.full(2, 0.7), mm(5))
    return air


def _hila(grid: Grid, a: Anatomy) -> np.ndarray:
    """The hilar shadows: main pulmonary arteries and nodes, a soft density at each hilum."""
    out = np.zeros((grid.size, grid.size), dtype=np.float32)
    for side in (RIGHT, LEFT):
        hx, hy = hilum(a, side)
        rows, cols, X, Y = grid.box(hx - 0.06, hx + 0.06, hy - 0.07, hy + 0.08)
        d2 = ((X - hx - side * 0.005) / 0.022) ** 2 + ((Y - hy - 0.01) / 0.04) ** 2
        out[rows, cols] += np.exp(-d2)
    return out * mm(14)


def _arms(grid: Grid, a: Anatomy) -> np.ndarray:
    """Where the upper arms and shoulders lie (thinner than the trunk)."""
    X, Y = grid.coords()[None, :], grid.coords()[:, None]
    lateral = np.abs(X - a.midline) - (a.thorax_half_width_left + a.body_margin)
    return np.clip(lateral / 0.1, 0, 1) * np.clip((0.42 - Y) / 0.08, 0, 1)


def _abdomen(grid: Grid, a: Anatomy) -> np.ndarray:
    """Below the domes: bone contrast is lower there (thicker tissue, more scatter)."""
    Y = grid.coords()[:, None]
    return np.clip((Y - (a.dome_right_y + a.dome_left_y) / 2 - 0.03) / 0.06, 0, 1) + 0 * Y.T


def _breasts(grid: Grid, a: Anatomy) -> np.ndarray:
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


def _gastric_bubble(grid: Grid, a: Anatomy, rng: np.random.Generator) -> np.ndarray:
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


def _streams(rng: np.random.Generator) -> list[np.random.Generator]:
    """Independent streams for anatomy, findings, texture, vessels and noise.

    Separate streams keep the patient the same whatever findings are drawn on it.
    """
    return [np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=5)]


def patient_anatomy(rng: np.random.Generator) -> Anatomy:
    """The normal anatomy (age, sex, geometry) that :func:`render_phantom` would draw from
    ``rng``, without rendering (``rng`` is advanced the same way)."""
    return anat.sample_anatomy(_streams(rng)[0])


def render_phantom_detailed(
    size: int, findings: frozenset[str], rng: np.random.Generator
) -> RenderedPhantom:
    """Render one phantom and return it with its ground truth (see :func:`render_phantom`)."""
    _check_size(size)
    findings = frozenset(findings)
    fnd.check_findings(findings)
    a_rng, f_rng, t_rng, v_rng, n_rng = _streams(rng)
    base = anat.sample_anatomy(a_rng)
    bone_rng = np.random.default_rng(int(a_rng.integers(0, 2**63 - 1)))
    a, plan = fnd.plan_findings(base, findings, f_rng)

    coarse = lung_masks(_COARSE, a)
    coarse_lung = coarse["right"] + coarse["left"]
    tree: VesselTree = grow_trees(a, coarse_lung, v_rng)

    grid = Grid(size)
    masks = lung_masks(size, a)
    lungs_raw = masks["right_raw"] + masks["left_raw"]
    lungs = masks["right"] + masks["left"]
    body = polygon_mask(size, anat.body_outline(a), soften=mm(2.5))
    body_thick = np.sqrt(np.clip(blur(body, 0.05), 0, 1)) * body * (1 - 0.4 * _arms(grid, a))
    depth = np.sqrt(np.clip(blur(lungs_raw, 0.035) * 1.6, 0, 1))
    solid = np.maximum(masks["heart"], masks["mediastinum"])
    air = blur(depth * (lungs_raw * (1 - solid) + 0.2 * solid), mm(1.0))
    abdomen = _abdomen(grid, a)

    canvas = fnd.Canvas(grid=grid, anatomy=a, masks=masks, tree=tree, coarse_lung=coarse_lung)
    for lesion in plan:
        fnd.draw_lesion(canvas, lesion)

    bone = np.zeros((size, size), dtype=np.float32)
    draw_ribs(bone, grid, a, bone_rng)
    draw_clavicles(bone, grid, a)
    draw_spine(bone, grid, a)
    draw_shoulders(bone, grid, a)

    vessels = draw_vessels(size, tree, canvas.vessel_weight) * lungs * canvas.vessel_mult
    texture = upsample(smooth_noise(t_rng, 96, 1.0), size) * mm(5) + upsample(
        smooth_noise(t_rng, 256, 0.7), size) * mm(2.5)

    fill = np.clip(canvas.fill, 0, 1)
    parenchyma = 0.2 * a.lung_density
    air_eff = air * (1 - parenchyma) * (1 - fill)
    atten = (
        _BODY * body_thick
        - _AIR * air_eff
        - _AIR * canvas.air_plus
        - _TRACHEA * _trachea(size, a) * body
        - _gastric_bubble(grid, a, t_rng)
        + _BONE * bone * (1 - 0.55 * abdomen)
        + 2.2 * vessels * (1 - fill)
        + canvas.density
        + _hila(grid, a)
        + _breasts(grid, a)
        + texture * lungs * (1 - fill) * (0.4 + a.lung_density) * 0.5
    )
    image = _display(atten, a, n_rng)
    return RenderedPhantom(image=image, anatomy=a, findings=findings, lesions=tuple(plan))


def _display(atten: np.ndarray, a: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Processed-radiograph look: a soft shoulder curve, equalisation, quantum noise."""
    x = atten / _BODY  # ~0 air, ~0.2 lung, ~1 mediastinum
    img = 0.97 * np.tanh((1.05 * a.contrast * a.exposure) * x)
    img = img + 0.3 * (img - blur(img, 0.06))
    size = img.shape[0]
    sigma = a.noise * np.sqrt(size / 1024.0) * (0.4 + img)
    img = img + sigma * rng.standard_normal((size, size), dtype=np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def render_phantom(size: int, findings: frozenset[str], rng: np.random.Generator) -> np.ndarray:
    """A synthetic PA chest radiograph showing exactly ``findings``.

    ``size`` is the image side in pixels (16 to 1024); the geometry is normalised, so one rng
    state gives the same patient at every size. Returns ``[size, size]`` float32 in [0, 1],
    MONOCHROME2 (air black, bone white). Unknown finding names raise ``ValueError``.
    """
    return render_phantom_detailed(size, findings, rng).image
