"""The 14 ChestX-ray14 findings: how each changes the anatomy and what it adds to the image.

Why a plan first: a finding is decided (side, place, size) from its own random stream before
anything is drawn, so that adding one finding never moves another, the anatomy stays the same
patient with or without the finding, and the decisions can be returned as ground truth.

Every finding of the dataset is rendered; none is refused. What each looks like:

- Cardiomegaly: cardiothoracic ratio 0.55-0.68 (normal phantoms 0.40-0.48), taller heart.
- Effusion: fluid in the dependent hemithorax (one side or both) with a meniscus rising
  laterally, blunted costophrenic angle and a lost hemidiaphragm outline when large.
- Pneumothorax: the lung collapsed away from the apex and lateral wall behind a thin
  visceral pleural line; no vessels and extra lucency outside it.
- Nodule: a round opacity of 6-28 mm; Mass: a lobulated opacity of 35-80 mm.
- Consolidation: a dense lobar/segmental airspace opacity with air bronchograms.
- Pneumonia: patchy, less dense airspace opacity, often in a lower zone.
- Infiltration: ill-defined hazy patches, one or both lungs.
- Atelectasis: plate-like (discoid) basal opacities, sometimes a lower-lobe wedge, with volume
  loss (raised hemidiaphragm, trachea drawn to the side).
- Edema: bilateral perihilar haze ("bat wing"), Kerley B lines at the bases, upper-lobe
  vessel distension.
- Emphysema: hyperlucent, hyperexpanded lungs, flat low domes, narrow heart, pruned vessels,
  sometimes apical bullae.
- Fibrosis: reticular (net-like) opacities, peripheral and basal, with mild volume loss.
- Pleural_Thickening: a smooth pleural band along the lateral wall or an apical cap.
- Hernia: a hiatal hernia: a retrocardiac rounded opacity with an air-fluid level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cxrgan_desktop.imaging.phantom import anatomy as anat
from cxrgan_desktop.imaging.phantom.anatomy import LEFT, RIGHT, Anatomy, mm
from cxrgan_desktop.imaging.phantom.raster import Grid, polygon_mask
from cxrgan_desktop.imaging.phantom.vessels import VesselTree, hilum
from cxrgan_desktop.labels.chestxray14 import FINDINGS

_SIDE_NAMES = {RIGHT: "right", LEFT: "left"}


@dataclass(frozen=True)
class Lesion:
    """One drawn finding. ``center`` and ``radius`` are normalised (for bounding boxes)."""

    finding: str
    side: int  # RIGHT, LEFT or 0 (midline / both)
    center: tuple[float, float]
    radius: float
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    seed: int = 0

    def bbox(self) -> tuple[float, float, float, float]:
        """Normalised (x0, y0, x1, y1) around the lesion."""
        x, y = self.center
        return (x - self.radius, y - self.radius, x + self.radius, y + self.radius)


@dataclass
class Canvas:
    """Fields the lesions draw into (all ``size`` x ``size`` float32)."""

    grid: Grid
    anatomy: Anatomy
    masks: dict[str, np.ndarray]
    tree: VesselTree
    coarse_lung: np.ndarray
    fill: np.ndarray = None  # type: ignore[assignment]  # airspace filled (0..1)
    density: np.ndarray = None  # type: ignore[assignment]  # added thickness (normalised)
    air_plus: np.ndarray = None  # type: ignore[assignment]  # extra air (fraction of deep lung)
    vessel_mult: np.ndarray = None  # type: ignore[assignment]
    vessel_weight: np.ndarray = None  # type: ignore[assignment]  # per vessel segment

    def __post_init__(self) -> None:
        n = self.grid.size
        self.fill = np.zeros((n, n), dtype=np.float32)
        self.density = np.zeros((n, n), dtype=np.float32)
        self.air_plus = np.zeros((n, n), dtype=np.float32)
        self.vessel_mult = np.ones((n, n), dtype=np.float32)
        self.vessel_weight = np.ones(len(self.tree.radii), dtype=np.float32)

    def lung(self, side: int) -> np.ndarray:
        return self.masks[_SIDE_NAMES[side]] if side else self.masks["right"] + self.masks["left"]

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.grid.coords()
        return c[None, :], c[:, None]


def check_findings(findings: frozenset[str]) -> None:
    """Raise ``ValueError`` for names that are not ChestX-ray14 findings."""
    unknown = sorted(set(findings) - set(FINDINGS))
    if unknown:
        raise ValueError(f"unknown finding(s) {unknown}; known: {', '.join(FINDINGS)}")


# -- planning -----------------------------------------------------------------------------------

def _point_in_lung(coarse: np.ndarray, rng: np.random.Generator, side: int, a: Anatomy,
                   y_range: tuple[float, float] = (0.0, 1.0), margin: float = 0.0
                   ) -> tuple[float, float]:
    """A random point inside the lung on ``side`` (0: either), at least ``margin`` inside."""
    res = coarse.shape[0]
    for _ in range(400):
        x, y = rng.uniform(0.05, 0.95), rng.uniform(*y_range)
        if side and np.sign(x - a.midline) != side:
            continue
        ok = True
        for dx, dy in ((0, 0), (margin, 0), (-margin, 0), (0, margin), (0, -margin)):
            i, j = int((y + dy) * res), int((x + dx) * res)
            if not (0 <= i < res and 0 <= j < res) or coarse[i, j] < 0.9:
                ok = False
                break
        if ok:
            return x, y
    hx, hy = hilum(a, side or RIGHT)
    return a.midline + (hx - a.midline) * 2.0, hy + 0.08


def _side(rng: np.random.Generator, p_right: float = 0.5) -> int:
    return RIGHT if rng.uniform() < p_right else LEFT


def plan_findings(a: Anatomy, findings: frozenset[str], rng: np.random.Generator
                  ) -> tuple[Anatomy, list[Lesion]]:
    """Alter the anatomy for the findings and decide their lesions.

    One seed is drawn per canonical finding whether present or not, so each finding's
    appearance is independent of which others are present.
    """
    seeds = {f: int(s) for f, s in zip(FINDINGS, rng.integers(0, 2**63 - 1, len(FINDINGS)),
                                       strict=True)}
    r = {f: np.random.default_rng(seeds[f]) for f in FINDINGS}
    lesions: list[Lesion] = []
    if "Emphysema" in findings:
        g = r["Emphysema"]
        drop = 0.05 + 0.04 * g.uniform()
        a = dataclasses.replace(
            a, dome_right_y=a.dome_right_y + drop, dome_left_y=a.dome_left_y + drop * 0.9,
            dome_height=0.022 + 0.012 * g.uniform(), apex_y=a.apex_y - 0.01,
            thorax_half_width_right=a.thorax_half_width_right * 1.03,
            thorax_half_width_left=a.thorax_half_width_left * 1.03,
            cardiothoracic_ratio=a.cardiothoracic_ratio * 0.86, heart_height=a.heart_height * 1.05,
            lung_density=0.35, vessel_scale=0.85, rib_spacing=a.rib_spacing * 1.08)
        lesions.append(Lesion("Emphysema", 0, (a.midline, 0.4), 0.35, {
            "bullae": int(g.integers(0, 3)), "side": _side(g)}, seeds["Emphysema"]))
    for name in ("Atelectasis", "Fibrosis"):
        if name in findings:
            g = r[name]
            side = _side(g, 0.55)
            raise_by = (0.02 + 0.025 * g.uniform()) if name == "Atelectasis" else 0.015
            if name == "Atelectasis":
                a = dataclasses.replace(a, trachea_shift=a.trachea_shift + side * 0.006)
                a = _raise_dome(a, side, raise_by)
            else:
                a = _raise_dome(_raise_dome(a, RIGHT, raise_by), LEFT, raise_by)
            lesions.append(Lesion(name, side if name == "Atelectasis" else 0,
                                  (a.midline + side * 0.2, a.dome_y(side) - 0.06), 0.12,
                                  {"wedge": bool(g.uniform() < 0.5)}, seeds[name]))
    if "Cardiomegaly" in findings:
        g = r["Cardiomegaly"]
        a = dataclasses.replace(a, cardiothoracic_ratio=0.55 + 0.13 * g.uniform(),
                                heart_height=a.heart_height + 0.03,
                                heart_right_fraction=a.heart_right_fraction * 0.95)
    if "Edema" in findings:
        a = dataclasses.replace(a, vessel_scale=a.vessel_scale * 1.25)
    coarse = _coarse_lungs(a)
    for name in ("Effusion", "Pneumothorax", "Pleural_Thickening"):
        if name in findings:
            g = r[name]
            if name == "Effusion":
                u = g.uniform()
                side = RIGHT if u < 0.45 else LEFT if u < 0.75 else 0
                params = {"volume": 0.3 + 0.7 * g.uniform() ** 1.3,
                          "meniscus": 0.6 + 0.4 * g.uniform()}
            elif name == "Pneumothorax":
                side = _side(g)
                params = {"collapse": 0.12 + 0.3 * g.uniform()}
            else:
                side = _side(g)
                params = {"thickness": mm(6 + 8 * g.uniform()), "apical": bool(g.uniform() < 0.4)}
            lesions.append(Lesion(name, side, (a.midline + (side or 1) * 0.2, 0.5), 0.3,
                                  params, seeds[name]))
    for name, lo, hi in (("Nodule", 8.0, 28.0), ("Mass", 35.0, 80.0)):
        if name in findings:
            g = r[name]
            diameter = mm(lo + (hi - lo) * g.uniform() ** 1.2)
            x, y = _point_in_lung(coarse, g, 0, a, margin=diameter * 0.35)
            lesions.append(Lesion(name, int(np.sign(x - a.midline)), (x, y), diameter / 2,
                                  {"phase": g.uniform(0, 2 * np.pi, 3).tolist()}, seeds[name]))
    for name in ("Consolidation", "Pneumonia", "Infiltration"):
        if name in findings:
            g = r[name]
            side = _side(g, 0.55)
            lower = g.uniform() < (0.7 if name != "Infiltration" else 0.5)
            y_range = ((a.hilum_y + 0.02, a.dome_y(side) - 0.02) if lower
                       else (a.apex_y + 0.06, a.hilum_y))
            x, y = _point_in_lung(coarse, g, side, a, y_range, margin=0.02)
            radius = {"Consolidation": 0.07, "Pneumonia": 0.06, "Infiltration": 0.075}[name]
            radius *= 0.8 + 0.5 * g.uniform()
            lesions.append(Lesion(name, side, (x, y), radius,
                                  {"both": bool(name == "Infiltration" and g.uniform() < 0.4)},
                                  seeds[name]))
    if "Edema" in findings:
        lesions.append(Lesion("Edema", 0, (a.midline, a.hilum_y), 0.3, {}, seeds["Edema"]))
    if "Hernia" in findings:
        g = r["Hernia"]
        rad = 0.035 + 0.025 * g.uniform()
        lesions.append(Lesion("Hernia", 0, (a.midline + 0.015, a.dome_left_y - rad * 0.7), rad,
                              {}, seeds["Hernia"]))
    return a, lesions


def _raise_dome(a: Anatomy, side: int, by: float) -> Anatomy:
    if side == RIGHT:
        return dataclasses.replace(a, dome_right_y=a.dome_right_y - by)
    return dataclasses.replace(a, dome_left_y=a.dome_left_y - by)


def _coarse_lungs(a: Anatomy, res: int = 128) -> np.ndarray:
    heart = polygon_mask(res, anat.heart_outline(a))
    cut = (1 - heart) * (1 - polygon_mask(res, anat.mediastinum_outline(a)))
    lungs = (polygon_mask(res, anat.lung_outline(a, RIGHT))
             + polygon_mask(res, anat.lung_outline(a, LEFT)))
    return lungs * cut


__all__ = ["Canvas", "Lesion", "check_findings", "plan_findings"]
