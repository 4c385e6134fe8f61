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
from typing import TYPE_CHECKING

import numpy as np

from cxrgan_desktop.imaging.phantom import anatomy as anat
from cxrgan_desktop.imaging.phantom import findings as fnd
from cxrgan_desktop.imaging.phantom import softtissue as soft
from cxrgan_desktop.imaging.phantom.anatomy import LEFT, RIGHT, Anatomy, mm
from cxrgan_desktop.imaging.phantom.lesions import draw_lesion
from cxrgan_desktop.imaging.phantom.raster import Grid, blur, polygon_mask, smooth_noise, upsample
from cxrgan_desktop.imaging.phantom.skeleton import (
    draw_clavicles,
    draw_ribs,
    draw_shoulders,
    draw_spine,
)
from cxrgan_desktop.imaging.phantom.vessels import VesselTree, draw_vessels, grow_trees

if TYPE_CHECKING:
    from cxrgan_desktop.imaging.phantom.visit import Visit

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 16, 1024
_COARSE = 128  # resolution of the masks used to grow vessels and place lesions

# densities in "normalised thickness of water" per unit of each field
_BODY = mm(230)  # full soft-tissue thickness at the centre of the chest
_AIR = mm(215)  # deepest lung
_BONE = mm(26)  # bone field value 1 ~ 26 mm of water
_TRACHEA = mm(70)


@dataclass(frozen=True)
class RenderedPhantom:
    """The image and the ground truth behind it (for tests, bounding boxes, manifests)."""

    image: np.ndarray  # [size, size] float32 in [0, 1]
    anatomy: Anatomy  # after the findings' changes (e.g. the enlarged heart)
    findings: frozenset[str]
    lesions: tuple[fnd.Lesion, ...]
    visit: Visit | None = None  # how a follow-up film differs from the patient's first


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


def stream_seeds(rng: np.random.Generator) -> tuple[int, ...]:
    """Seeds of the independent streams for anatomy, findings, texture, vessels and noise.

    Separate streams keep the patient the same whatever findings are drawn on it; a
    follow-up film (``followup.py``) reuses the anatomy, texture and vessel seeds.
    """
    return tuple(int(s) for s in rng.integers(0, 2**63 - 1, size=5))


def _streams(rng: np.random.Generator) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in stream_seeds(rng)]


def patient_anatomy(rng: np.random.Generator) -> Anatomy:
    """The normal anatomy (age, sex, geometry) that :func:`render_phantom` would draw from
    ``rng``, without rendering (``rng`` is advanced the same way)."""
    return anat.sample_anatomy(_streams(rng)[0])


def coarse_lung(a: Anatomy) -> np.ndarray:
    """Both air spaces at the coarse resolution the vessels grow in and lesions are placed in."""
    coarse = lung_masks(_COARSE, a)
    return coarse["right"] + coarse["left"]


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
    lung = coarse_lung(a)
    tree: VesselTree = grow_trees(a, lung, v_rng)
    atten = attenuation_map(size, a, plan, tree, lung, bone_rng, t_rng, t_rng)
    image = processed_image(atten, a, n_rng)
    return RenderedPhantom(image=image, anatomy=a, findings=findings, lesions=tuple(plan))


def attenuation_map(size: int, a: Anatomy, plan: list[fnd.Lesion], tree: VesselTree,
                    lung: np.ndarray, bone_rng: np.random.Generator,
                    texture_rng: np.random.Generator, gas_rng: np.random.Generator
                    ) -> np.ndarray:
    """The projected thickness of the planned anatomy and lesions, ``[size, size]``.

    ``lung`` is :func:`coarse_lung` of ``a``; ``texture_rng`` draws the lung texture (the
    patient's), ``gas_rng`` the gastric bubble and bowel gas (which change between films;
    the single-film renderer passes the texture stream for both).
    """
    grid = Grid(size)
    masks = lung_masks(size, a)
    lungs_raw = masks["right_raw"] + masks["left_raw"]
    lungs = masks["right"] + masks["left"]
    body = polygon_mask(size, anat.body_outline(a), soften=mm(2.5))
    arm = soft.arm_zone(grid, a)
    body_thick = np.sqrt(np.clip(blur(body, 0.05), 0, 1)) * body * (1 - 0.45 * arm)
    depth = np.sqrt(np.clip(blur(lungs_raw, 0.03) * 1.6, 0, 1))
    solid = np.maximum(masks["heart"], masks["mediastinum"])
    # lung behind the heart: thinner towards the heart's centre (the heart is thickest there)
    core = np.clip(blur(masks["heart"], 0.05) * 1.6 - 0.6, 0, 1)
    behind = blur(lungs_raw * masks["heart"], mm(4)) * (0.7 - 0.55 * core)
    air = blur(depth * (lungs_raw * (1 - solid) + behind), mm(1.0))
    abdomen = soft.abdomen(grid, a)
    # ribs are lost against the dense mediastinum and heart (scatter, display compression)
    hide = 1 - 0.75 * blur(solid, mm(3)) * (1 - abdomen)

    canvas = fnd.Canvas(grid=grid, anatomy=a, masks=masks, tree=tree, coarse_lung=lung)
    for lesion in plan:
        draw_lesion(canvas, lesion)

    ribs = np.zeros((size, size), dtype=np.float32)
    draw_ribs(ribs, grid, a, bone_rng)
    bone = ribs * hide
    draw_clavicles(bone, grid, a)
    draw_spine(bone, grid, a)
    draw_shoulders(bone, grid, a)

    vessels = draw_vessels(size, tree, canvas.vessel_weight) * lungs * canvas.vessel_mult
    texture = upsample(smooth_noise(texture_rng, 96, 1.0), size) * mm(5) + upsample(
        smooth_noise(texture_rng, 256, 0.7), size) * mm(2.5)

    fill = np.clip(canvas.fill, 0, 1)
    parenchyma = 0.2 * a.lung_density
    air_eff = air * (1 - parenchyma) * (1 - fill)
    return (
        _BODY * body_thick
        - _AIR * air_eff
        - _AIR * canvas.air_plus
        - _TRACHEA * soft.trachea(size, a) * body
        - soft.gastric_bubble(grid, a, gas_rng)
        - soft.bowel_gas(grid, a, gas_rng) * body
        + _BONE * bone * (1 - 0.55 * abdomen)
        + 2.2 * vessels * (1 - fill)
        + canvas.density
        + soft.hila(size, a)
        + soft.descending_aorta(grid, a)
        + soft.breasts(grid, a)
        + soft.lung_gradient(grid, a, lungs)
        + texture * lungs * (1 - fill) * (0.4 + a.lung_density) * 0.5
    )


def processed_image(atten: np.ndarray, a: Anatomy, rng: np.random.Generator) -> np.ndarray:
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
