"""The phantom patient: anatomical parameters and outlines in normalised coordinates.

Why: keeping anatomy as a small set of numbers (midline, thoracic width, dome heights,
cardiac size, ...) sampled from a random generator gives patient-to-patient variation, lets a
finding alter the anatomy it affects (cardiomegaly widens the heart, emphysema flattens the
domes, atelectasis raises one) and makes the same seed the same patient at every image size.

Coordinates: x to the right of the image, y down, both in [0, 1]. The image is a PA
radiograph in the standard viewing orientation, so the patient's right side is on the image's
left. ``side = -1`` is the patient's right (image left), ``side = +1`` the patient's left.
Field of view: :data:`FIELD_OF_VIEW_MM` across the image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from cxrgan_desktop.imaging.phantom.raster import smooth_closed_curve, smooth_open_curve

FIELD_OF_VIEW_MM = 400.0
"""Width (= height) of the phantom image in mm: a 14 x 17 inch detector cropped square."""

RIGHT, LEFT = -1, 1


def mm(value: float) -> float:
    """Millimetres to normalised image units."""
    return value / FIELD_OF_VIEW_MM


@dataclass(frozen=True)
class Anatomy:
    """One patient. Lengths are normalised image units unless named otherwise."""

    midline: float  # x of the spine / sternum
    thorax_half_width_right: float  # inner rib margin to midline at the widest level
    thorax_half_width_left: float
    apex_y: float  # top of the lung apices
    dome_right_y: float  # top of the right hemidiaphragm
    dome_left_y: float
    dome_height: float  # how far the dome rises above the costophrenic angle
    cardiothoracic_ratio: float  # max cardiac width / max inner thoracic width
    heart_right_fraction: float  # part of the cardiac width right of the midline
    heart_height: float
    mediastinum_half_width: float
    aortic_knob: float  # lateral bulge of the aortic arch beyond the mediastinum
    trachea_shift: float
    hilum_y: float
    body_margin: float  # soft tissue lateral to the ribs
    rib_spacing: float  # posterior rib spacing at the spine
    t1_y: float  # level of the first thoracic vertebra
    clavicle_y: float  # level of the medial clavicle heads
    shoulder_y: float
    female: bool
    age: int
    exposure: float  # overall brightness factor of the processed image
    contrast: float
    noise: float  # quantum noise standard deviation (in [0, 1] units)
    vessel_scale: float  # relative calibre of the pulmonary vessels
    lung_density: float  # parenchymal density (emphysema lowers it)

    @property
    def thoracic_width(self) -> float:
        """Maximal inner thoracic width (rib margin to rib margin), normalised."""
        return self.thorax_half_width_right + self.thorax_half_width_left

    @property
    def cardiac_width(self) -> float:
        return self.cardiothoracic_ratio * self.thoracic_width

    def half_width(self, side: int) -> float:
        return self.thorax_half_width_right if side == RIGHT else self.thorax_half_width_left

    def dome_y(self, side: int) -> float:
        return self.dome_right_y if side == RIGHT else self.dome_left_y

    def costophrenic_y(self, side: int) -> float:
        return self.dome_y(side) + self.dome_height

    def to_x(self, side: int, lateral: np.ndarray | float) -> np.ndarray | float:
        """Image x of a point ``lateral`` units from the midline on ``side``."""
        return self.midline + side * lateral


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw a normal adult patient. Always the same number of draws, whatever is asked later."""
    u = rng.uniform(size=24)
    scale = 0.92 + 0.13 * u[0]
    inspiration = u[1]  # 0 = shallow, 1 = deep
    half = 0.345 * scale
    female = bool(u[2] < 0.45)
    age = int(18 + 70 * u[3] ** 0.8)
    apex = 0.105 + 0.03 * u[4]
    dome_r = 0.615 + 0.09 * inspiration + 0.02 * (u[5] - 0.5)
    return Anatomy(
        midline=0.5 + 0.024 * (u[6] - 0.5),
        thorax_half_width_right=half * (1 + 0.03 * (u[7] - 0.5)),
        thorax_half_width_left=half * (1 + 0.03 * (u[8] - 0.5)),
        apex_y=apex,
        dome_right_y=dome_r,
        dome_left_y=dome_r + 0.015 + 0.025 * u[9],
        dome_height=0.07 + 0.03 * u[10],
        cardiothoracic_ratio=0.40 + 0.08 * u[11],
        heart_right_fraction=0.33 + 0.07 * u[12],
        heart_height=0.24 + 0.04 * u[13],
        mediastinum_half_width=0.055 + 0.012 * u[14],
        aortic_knob=0.018 + 0.014 * u[15] + 0.012 * (age > 60),
        trachea_shift=0.006 * (u[16] - 0.3),
        hilum_y=0.40 + 0.03 * u[17] + 0.5 * (dome_r - 0.66),
        body_margin=0.035 + 0.035 * u[18],
        rib_spacing=(0.63 - apex) / 9.5,
        t1_y=apex + 0.015,
        clavicle_y=apex + 0.07 + 0.03 * u[19],
        shoulder_y=0.05 + 0.05 * u[20],
        female=female,
        age=age,
        exposure=0.94 + 0.12 * u[21],
        contrast=0.9 + 0.2 * u[22],
        noise=0.008 + 0.008 * u[23],
        vessel_scale=1.0,
        lung_density=1.0,
    )


# -- outlines (vertex arrays, normalised x, y) ---------------------------------------------------

@functools.lru_cache(maxsize=64)
def lateral_wall(a: Anatomy, side: int) -> np.ndarray:
    """Inner rib margin from the apex down to the costophrenic angle: N x 2 (lateral, y).

    ``lateral`` is the distance from the midline; y increases monotonically.
    """
    w = a.half_width(side)
    top = a.apex_y
    cp = a.costophrenic_y(side)
    h = cp - top
    ctrl = np.array([
        [0.40 * w, top],
        [0.62 * w, top + 0.06 * h],
        [0.80 * w, top + 0.22 * h],
        [0.92 * w, top + 0.45 * h],
        [0.985 * w, top + 0.72 * h],
        [w, cp],
    ])
    return smooth_open_curve(ctrl, 10)


def wall_half_width(a: Anatomy, side: int, y: np.ndarray | float) -> np.ndarray:
    """Distance of the inner rib margin from the midline at height ``y`` (clamped ends)."""
    wall = lateral_wall(a, side)
    return np.interp(y, wall[:, 1], wall[:, 0])


def dome_curve(a: Anatomy, side: int, lateral: np.ndarray) -> np.ndarray:
    """y of the hemidiaphragm at distance ``lateral`` from the midline."""
    w = a.half_width(side)
    peak = 0.45 * w
    dh = a.dome_height
    t = np.asarray(lateral, dtype=np.float64)
    outer = np.clip((t - peak) / (w - peak), 0, 1)
    inner = np.clip((peak - t) / peak, 0, 1)
    return a.dome_y(side) + dh * (1 - np.cos(0.5 * np.pi * outer)) * (0.6 + 0.4 * outer) + (
        0.3 * dh * inner**2)


def lung_outline(a: Anatomy, side: int) -> np.ndarray:
    """The hemithorax air space before the heart and mediastinum are cut out of it.

    The medial edge runs just beside the midline; the mediastinal and cardiac silhouettes are
    subtracted when rendering, so that an enlarged heart displaces lung automatically.
    """
    w = a.half_width(side)
    wall = lateral_wall(a, side)  # apex -> costophrenic angle
    lat = np.linspace(w, 0.015, 40)
    dome = np.column_stack([lat, dome_curve(a, side, lat)])  # angle -> medial
    m = a.mediastinum_half_width
    medial_top = np.array([[0.015, a.apex_y + 0.15], [0.8 * m, a.apex_y + 0.075],
                           [0.14 * w + 0.4 * m, a.apex_y + 0.025], [0.3 * w, a.apex_y + 0.004]])
    pts = np.vstack([wall, dome[1:], medial_top])
    return np.column_stack([a.midline + side * pts[:, 0], pts[:, 1]])


def heart_outline(a: Anatomy) -> np.ndarray:
    """The cardiac silhouette of a PA film, about a third right and two thirds left of midline.

    Right border: the right atrium, a convexity bulging into the right lung from the end of the
    superior vena cava down to the right cardiophrenic angle. Left border (below the aortic
    knob and pulmonary artery, which belong to :func:`mediastinum_outline`): the left atrial
    appendage (flat), then the left ventricle sweeping down and out to the apex on the left
    hemidiaphragm. The lower part lies below the domes and merges with the abdomen. The spline
    is rescaled so that its greatest extents are exactly ``heart_right_fraction`` and the rest
    of ``cardiac_width`` (the cardiothoracic ratio is measured from them, at any level).
    """
    c, m = a.midline, a.mediastinum_half_width
    right = a.cardiac_width * a.heart_right_fraction
    left = a.cardiac_width - right
    top = a.hilum_y + 0.02
    # the heart rests on the domes; a dome raised by volume loss hides more of it rather
    # than lifting it
    base = top + a.heart_height
    dl = max(a.dome_left_y, base - 0.01)
    dr = max(a.dome_right_y, base - 0.035)
    cp_right = float(dome_curve(a, RIGHT, 0.85 * right)) + dr - a.dome_right_y

    def dome_l(lateral: float) -> float:
        return float(dome_curve(a, LEFT, lateral)) + dl - a.dome_left_y

    # the widest points stay visible above the domes (the CTR is measured from them)
    lv_y = min(dl - 0.065, a.dome_left_y - 0.04)
    ra_y = min(dr - 0.06, a.dome_right_y - 0.04)
    ctrl = np.array([
        [c - m - 0.004, top + 0.02],  # SVC / right atrial junction
        [c - 0.55 * m, top - 0.01],
        [c + 0.8 * m, top - 0.015],
        [c + m + 0.022, top + 0.02],  # left atrial appendage
        [c + 0.62 * left + 0.25 * m, top + 0.3 * (dl - top)],
        [c + 0.93 * left, lv_y - 0.055],
        [c + left, lv_y],  # left ventricle, widest
        [c + 0.95 * left, max(dome_l(0.95 * left) - 0.028, lv_y + 0.02)],
        [c + 0.8 * left, dome_l(0.8 * left) + 0.006],  # apex, on the left dome
        [c + 0.4 * left, dome_l(0.4 * left) + 0.035],
        [c - 0.3 * right, dr + 0.05],
        [c - 0.82 * right, cp_right + 0.006],  # right cardiophrenic angle
        [c - right, ra_y],  # right atrium, widest
        [c - 0.86 * right - 0.1 * m, top + 0.38 * (dr - top)],
    ])
    pts = smooth_closed_curve(ctrl, 12)
    x = pts[:, 0] - c
    pts[:, 0] = c + np.where(x < 0, x * right / -x.min(), x * left / x.max())
    return pts


def mediastinum_outline(a: Anatomy) -> np.ndarray:
    """Superior mediastinum from the neck down into the heart.

    Right border: brachiocephalic vessels, then the straight superior vena cava. Left border:
    left subclavian artery, the aortic knob, the aortopulmonary window, the main pulmonary
    artery. The lower part lies hidden inside the cardiac silhouette.
    """
    c = a.midline
    m = a.mediastinum_half_width
    knob_y = a.hilum_y - 0.09
    ctrl = np.array([
        [c - 0.75 * m, -0.05],
        [c + 0.75 * m, -0.05],
        [c + 0.75 * m, knob_y - 0.08],
        [c + m + 0.6 * a.aortic_knob, knob_y - 0.025],
        [c + m + a.aortic_knob, knob_y + 0.005],  # aortic knob
        [c + m + 0.003, knob_y + 0.045],  # aortopulmonary window
        [c + m + 0.014, a.hilum_y - 0.01],  # main pulmonary artery
        [c + m + 0.005, a.hilum_y + 0.05],
        [c + 0.5 * m, a.dome_left_y - 0.07],  # hidden inside the heart
        [c - 0.6 * m, a.dome_right_y - 0.07],
        [c - m - 0.004, a.hilum_y + 0.06],
        [c - m - 0.004, a.hilum_y - 0.02],  # superior vena cava
        [c - 0.95 * m, knob_y - 0.05],
    ])
    return smooth_closed_curve(ctrl, 12)


def body_outline(a: Anatomy) -> np.ndarray:
    """Skin outline: neck, shoulders and upper arms (along the image edges, leaving the field
    laterally below a curved axilla, so air shows between arm and chest wall), chest wall,
    upper abdomen."""
    c = a.midline
    pts = []
    for side in (RIGHT, LEFT):
        w = a.half_width(side) + a.body_margin
        arm = w - a.body_margin + 0.14  # humeral shaft axis at the axilla's level
        half = [
            [0.085, -0.05],
            [0.095, 0.0],
            [0.13, a.shoulder_y - 0.01],
            [0.30, a.shoulder_y + 0.035],
            [0.62, a.shoulder_y + 0.09],  # off the image: the shoulder and arm
            [0.70, 0.45],
            [0.72, 0.80],
            [arm + 0.05, 0.66],  # the arm's inner skin, leaving the field laterally
            [arm - 0.035, 0.5],
            [w + 0.02, 0.43],  # axilla
            [w + 0.006, 0.49],
            [w + 0.005, 0.62],
            [w - 0.01, 0.85],
            [w - 0.03, 1.08],
        ]
        arr = np.array(half)
        arr[:, 0] = c + side * arr[:, 0]
        pts.append(arr if side == LEFT else arr[::-1])
    ctrl = np.vstack([pts[0], pts[1]])  # right side bottom-to-top, then left top-to-bottom
    return smooth_closed_curve(ctrl, 10)
