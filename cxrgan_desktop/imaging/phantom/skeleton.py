"""The bony thorax: ribs, clavicles, spine, scapulae and humeral heads.

Why analytic shapes: each rib is drawn as the projection of a tilted hoop (half an ellipse per
side: the posterior rib from the spine to the lateral wall on top, the anterior rib back
towards the sternum below it), which gives the familiar PA picture of near-horizontal
posterior ribs and anterior ribs sloping down medially, at the cost of a few array operations
per rib on its bounding box only. Bone is drawn with a brighter cortex than medulla.
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


def draw_ribs(out: np.ndarray, grid: Grid, a: Anatomy, rng: np.random.Generator) -> None:
    """Add 12 pairs of ribs (posterior and anterior arcs) to ``out`` (bone density)."""
    px = grid.px
    jitter = rng.normal(0.0, 1.0, size=(2, 12, 3))
    for si, side in enumerate((RIGHT, LEFT)):
        for k in range(12):
            top = a.t1_y + k * a.rib_spacing * (1 + 0.02 * k) + 0.003 * jitter[si, k, 0]
            # the anterior end lies about 3-4.5 posterior rib spaces below the posterior one
            drop = a.rib_spacing * (2.6 + 0.3 * min(k, 7)) * (1 + 0.05 * jitter[si, k, 1])
            yc = top + drop / 2
            b = drop / 2
            radius = float(wall_half_width(a, side, yc)) + mm(3)
            if k == 0:
                radius *= 0.92
            # the arc peaks a little lateral to the spine: the rib neck rises from the spine
            uc = 0.16 * radius
            semi = radius - uc
            hw_post = mm(5.0 + 0.3 * k)
            hw_ant = mm(6.5 + 0.3 * k)
            x_lo = a.midline + min(side * radius, 0) - hw_ant
            x_hi = a.midline + max(side * radius, 0) + hw_ant
            rows, cols, X, Y = grid.box(x_lo, x_hi, top - hw_ant - 0.02, top + drop + hw_ant)
            if X.size == 0 or Y.size == 0:
                continue
            lat = np.maximum(side * (X - a.midline), 0.0)
            du = lat - uc
            dy = Y - yc
            # a superellipse (exponent 1.5 across) slopes more evenly than an ellipse
            au = np.abs(du) / semi
            f = au**1.5 + (dy / b) ** 2
            grad = np.sqrt((1.5 * np.sqrt(au) / semi) ** 2 + (2 * dy / b**2) ** 2)
            dist = (f - 1.0) / np.maximum(grad, 1e-6)
            # posterior arcs start at the transverse processes; floating ribs end early
            start = np.clip((lat - mm(18)) / mm(10), 0, 1)
            if k >= 10:
                start = start * np.clip((radius * 0.75 - lat) / mm(20), 0, 1)
            # anterior arcs end at the (unseen) costal cartilage, farther out for lower ribs
            cart = radius * min(0.32 + 0.04 * k, 0.85)
            ant_on = np.clip((lat - cart) / mm(8), 0, 1) * (k < 8)
            post_val = _cortical(dist, hw_post, px) * start
            ant_val = 0.45 * _cortical(dist, hw_ant, px) * ant_on
            out[rows, cols] += np.where(dy <= 0, post_val, ant_val)


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
        shaft_d = np.abs(side * (X - cx) - 0.02 - 0.25 * (Y - cy))
        shaft = band(shaft_d / mm(14), 1.0, px / mm(14)) * (cy < Y)
        out[rows, cols] += 1.1 * np.maximum(head, shaft)
