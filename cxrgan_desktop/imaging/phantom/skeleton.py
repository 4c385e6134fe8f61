"""The bony thorax: ribs, clavicles, spine, scapulae and humeral heads.

Why analytic shapes: each rib is an explicit centre line per side (the posterior arc from
the spine, rising at the neck, arching out and turning down along the lateral wall; the
fainter anterior arc sloping down and medially to the costal cartilage), drawn by its
distance to the line on the rib's bounding box only, so 24 ribs cost a few array operations
each. Bone is drawn with a brighter cortex than medulla; ``render`` hides the ribs over the
dense mediastinum and heart and dims them below the domes.
"""

from __future__ import annotations

import numpy as np

from cxrgan_desktop.imaging.phantom.anatomy import LEFT, RIGHT, Anatomy, mm, wall_half_width
from cxrgan_desktop.imaging.phantom.raster import Grid, band, polygon_mask, smooth_closed_curve


def _cortical(distance: np.ndarray, half_width: float, px: float) -> np.ndarray:
    """Tube of bone with a denser cortex: bright margins, greyer middle."""
    solid = band(distance, half_width, px)
    inner = band(distance, 0.72 * half_width, px) if half_width * 0.72 > px else 0.0
    return solid - 0.55 * inner


# posterior rib centre lines: (fraction of the way from the spine to the lateral wall, drop in
# rib spaces) for the upper ribs (strongly arched) and the lower ones (flatter, more oblique)
_POST_U = np.array([0.0, 0.12, 0.3, 0.5, 0.7, 0.86, 0.96, 1.0])
_POST_UPPER = np.array([0.0, -0.35, -0.45, -0.1, 0.55, 1.3, 1.95, 2.3])
_POST_LOWER = np.array([0.0, -0.05, 0.25, 0.65, 1.1, 1.6, 2.1, 2.4])


def _rib_profile(d: np.ndarray, hw: float, px: float, sharp_low: bool) -> np.ndarray:
    """Cross-section of a rib at signed distance ``d`` (positive = caudal): brighter cortex,
    and for posterior ribs a sharper, brighter lower border."""
    val = _cortical(d, hw, px)
    if sharp_low and hw > 2 * px:
        val = val * (0.8 + 0.35 * np.clip(d / hw, -1, 1))
    return val


def _centre_distance(Y: np.ndarray, yc: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Signed distance (normalised) from a pixel to an explicit curve y = yc(x)."""
    return (Y - yc) / np.sqrt(1 + slope * slope)


def draw_ribs(out: np.ndarray, grid: Grid, a: Anatomy, rng: np.random.Generator) -> None:
    """Add 12 pairs of ribs to ``out`` (bone density).

    Posterior ribs leave the spine at their vertebra, rise a little (neck and tubercle), arch
    laterally and turn down along the lateral wall; upper ribs are more arched, lower ones
    flatter and more oblique. The anterior ribs (fainter: they are thinner and farther from
    the detector) continue from the lateral wall downwards and medially and stop a few
    centimetres from the midline, where the costal cartilage (invisible) takes over. About
    ten posterior ribs lie above the right dome at mid-inspiration.
    """
    px = grid.px
    s = a.rib_spacing
    jitter = rng.normal(0.0, 1.0, size=(2, 12, 3))
    for si, side in enumerate((RIGHT, LEFT)):
        for k in range(12):
            top = a.t1_y + k * s * 1.02 + 0.003 * jitter[si, k, 0]
            f = min(k / 9.0, 1.0)
            shape = (1 - f) * _POST_UPPER + f * _POST_LOWER
            wall_y = top + shape[-1] * s
            radius = float(wall_half_width(a, side, wall_y)) + mm(3)
            if k == 0:
                radius *= 0.9
            lat0 = mm(14)
            hw_post = mm(4.6 + 0.25 * k)
            hw_ant = mm(6.0 + 0.3 * k)
            # anterior end: about 3-4 rib spaces below the posterior one
            end_y = top + s * (3.3 + 0.25 * min(k, 6)) * (1 + 0.05 * jitter[si, k, 1])
            cart = radius * min(0.3 + 0.045 * k, 0.8)
            x_lo = a.midline + min(side * radius, 0) - hw_ant
            x_hi = a.midline + max(side * radius, 0) + hw_ant
            rows, cols, X, Y = grid.box(x_lo, x_hi, top - 0.6 * s - hw_ant,
                                        end_y + hw_ant + mm(4))
            if X.size == 0 or Y.size == 0:
                continue
            lat = np.maximum(side * (X - a.midline), 0.0)
            u = (lat - lat0) / (radius - lat0)
            uc = np.clip(u, 0, 1)
            yc = top + s * np.interp(uc, _POST_U, shape)
            slope = s * np.interp(uc, _POST_U[1:] - 0.0, np.diff(shape) / np.diff(_POST_U)) / (
                radius - lat0)
            start = np.clip((lat - lat0) / mm(6), 0, 1) * np.clip((radius + hw_post - lat) / px,
                                                                  0, 1)
            if k >= 10:  # floating ribs end in the flank
                start = start * np.clip((radius * (0.55 + 0.15 * (11 - k)) - lat) / mm(20), 0, 1)
            post = _rib_profile(_centre_distance(Y, yc, slope), hw_post, px, True) * start
            val = post
            if k < 9:
                # anterior arc: from the lateral wall (top of the turn) down to the cartilage
                v = np.clip((radius - lat) / (radius - cart), 0, 1)
                ya = wall_y - 0.5 * s + (end_y - wall_y + 0.5 * s) * (0.55 * v + 0.45 * (
                    1 - (1 - v) ** 2))
                sa = -(end_y - wall_y + 0.5 * s) * (0.55 + 0.9 * (1 - v)) / (radius - cart)
                on = np.clip((lat - cart) / mm(8), 0, 1) * np.clip((radius - lat) / mm(6) + 0.5,
                                                                   0, 1)
                ant = 0.42 * _cortical(_centre_distance(Y, ya, sa), hw_ant, px) * on
                val = np.maximum(post, ant) + 0.5 * np.minimum(post, ant)
            out[rows, cols] += val


def draw_clavicles(out: np.ndarray, grid: Grid, a: Anatomy) -> None:
    """Add the clavicles: S-shaped bars from the sternal notch up and out to the acromion."""
    px = grid.px
    for side in (RIGHT, LEFT):
        u0, u1 = mm(12), 0.30 + 0.35 * (a.half_width(side) - 0.32)
        y0, y1 = a.clavicle_y, a.clavicle_y - 0.05
        rows, cols, X, Y = grid.box(a.midline - 0.42, a.midline + 0.42, y1 - 0.05, y0 + 0.05)
        lat = side * (X - a.midline)
        t = np.clip((lat - u0) / (u1 - u0), 0, 1)
        curve = y0 + (y1 - y0) * t + 0.012 * np.sin(2 * np.pi * t)
        slope = ((y1 - y0) + 0.012 * 2 * np.pi * np.cos(2 * np.pi * t)) / (u1 - u0)
        dist = (Y - curve) / np.sqrt(1 + slope**2)
        hw = mm(7.0) + mm(3.5) * (1 - t) ** 4
        inside = np.clip((lat - u0 + mm(4)) / mm(4), 0, 1) * np.clip((u1 - lat) / mm(4), 0, 1)
        out[rows, cols] += 2.0 * _cortical(dist / hw, 1.0, px / mm(7.0)) * inside


def draw_spine(out: np.ndarray, grid: Grid, a: Anatomy) -> None:
    """Add the vertebral column: bodies with end plates, disc spaces, pedicles and spinous
    processes, so that it shows through the mediastinum as on a well-penetrated film."""
    px = grid.px
    rows, cols, X, Y = grid.box(a.midline - 0.08, a.midline + 0.08, 0.0, 1.0)
    dx = X - a.midline
    half = mm(15) + mm(10) * np.clip(Y, 0, 1)
    level = (Y - a.t1_y) / (a.rib_spacing * 1.02)  # vertebra index, T1 = 0
    phase = level - np.floor(level) - 0.5  # 0 at the vertebral body centre, +-0.5 at discs
    body = band(dx / half, 1.0, px / mm(15))
    endplate = 1.0 - 0.6 * np.exp(-(((np.abs(phase) - 0.5) / 0.07) ** 2))
    body = body * endplate * (0.55 + 0.45 * (np.abs(dx) / half) ** 2)
    ped_dx = np.abs(dx) - 0.72 * half
    ped = np.exp(-((ped_dx / mm(4.5)) ** 2 + ((phase + 0.12) / 0.22) ** 2))
    ring = ped - 0.7 * np.exp(-((ped_dx / mm(2.8)) ** 2 + ((phase + 0.12) / 0.13) ** 2))
    spinous = np.exp(-((dx / mm(3.5)) ** 2 + ((phase - 0.3) / 0.17) ** 2))
    out[rows, cols] += 0.55 * body + 0.45 * ring + 0.35 * spinous


def draw_shoulders(out: np.ndarray, grid: Grid, a: Anatomy) -> None:
    """Add scapulae (thin plates over the upper lateral chest) and the humeral heads."""
    px = grid.px
    for side in (RIGHT, LEFT):
        w = a.half_width(side)
        sy = a.shoulder_y
        ctrl = np.array([
            [w + 0.07, sy + 0.10],  # glenoid
            [w - 0.02, sy + 0.075],
            [w - 0.11, sy + 0.085],  # superior angle
            [w - 0.085, sy + 0.25],
            [w - 0.04, sy + 0.33],  # inferior angle
            [w + 0.035, sy + 0.22],
        ])
        ctrl[:, 0] = a.midline + side * ctrl[:, 0]
        plate = polygon_mask(grid.size, smooth_closed_curve(ctrl, 10), soften=mm(2))
        edge = plate * (1 - plate) * 4
        out += 0.22 * plate + 0.25 * edge
        cx = a.midline + side * (w + 0.11)
        cy = sy + 0.085
        r = 0.055
        rows, cols, X, Y = grid.box(cx - r - 0.01, cx + r + 0.01, cy - r - 0.01, 1.0)
        d = np.sqrt((X - cx) ** 2 + (Y - cy) ** 2)
        head = _cortical(d / r, 1.0, px / r)
        shaft_d = np.abs(side * (X - cx) - 0.005 - 0.1 * (Y - cy))
        shaft = band(shaft_d / mm(14), 1.0, px / mm(14)) * (cy < Y)
        out[rows, cols] += 1.1 * np.maximum(head, shaft)
