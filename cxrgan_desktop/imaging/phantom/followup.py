"""Follow-up films: the same phantom patient radiographed again on another day.

Why: a real chest X-ray archive holds several films of most patients (ChestX-ray14: 112,120
images of 30,805 patients), and what a model can learn about one patient from another film of
the same patient (re-identification, memorisation audits, patient-wise splits) is only
testable when the phantom has patients, not just images. A patient keeps what is fixed in a
person: skeleton (ribs, clavicles, spine), heart and mediastinum shape, lung shape, vessel
tree, lung texture, sex and age. Between films changes what changes in a radiology
department: where the patient stands (a shift of up to :data:`MAX_SHIFT` of the field, a
rotation of up to :data:`MAX_ROTATION_DEG`), how deep the breath is (the dome level), the
exposure, contrast and noise, bowel gas, and the findings.

A patient's first film is exactly ``render.render_phantom_detailed`` of the patient's
generator (so a one-image-per-patient set is the single-film phantom), and
:class:`Visit` describes how a later film differs from that first one. The vessel tree is
grown once, on the first film's anatomy, and moved with the lungs to each later film's
(deeper inspiration stretches it downwards), so its branching never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cxrgan_desktop.imaging.phantom import anatomy as anat
from cxrgan_desktop.imaging.phantom import findings as fnd
from cxrgan_desktop.imaging.phantom.anatomy import LEFT, RIGHT, Anatomy
from cxrgan_desktop.imaging.phantom.render import (
    RenderedPhantom,
    _check_size,
    attenuation_map,
    coarse_lung,
    processed_image,
    stream_seeds,
)
from cxrgan_desktop.imaging.phantom.vessels import VesselTree, grow_trees
from cxrgan_desktop.imaging.phantom.visit import Visit

MAX_SHIFT = 0.03
"""Largest shift of the patient between films, per axis, as a fraction of the field (12 mm)."""
MAX_ROTATION_DEG = 3.0
"""Largest in-plane rotation of the patient between films, degrees."""
MAX_INSPIRATION = 0.025
"""Largest change of the dome level between films (normalised; 10 mm)."""


def sample_visit(rng: np.random.Generator) -> Visit:
    """A later film's position, breath and exposure; exposure, contrast and noise are drawn
    from the same ranges as a new patient's (``anatomy.sample_anatomy``)."""
    u = rng.uniform(size=7)
    return Visit(
        shift_x=float(MAX_SHIFT * (2 * u[0] - 1)),
        shift_y=float(MAX_SHIFT * (2 * u[1] - 1)),
        rotation_deg=float(MAX_ROTATION_DEG * (2 * u[2] - 1)),
        inspiration=float(MAX_INSPIRATION * (2 * u[3] - 1)),
        exposure=float(0.94 + 0.12 * u[4]),
        contrast=float(0.9 + 0.2 * u[5]),
        noise=float(0.008 + 0.008 * u[6]))


@dataclass(frozen=True)
class PhantomPatient:
    """What stays the same on every film of one patient."""

    anatomy: Anatomy  # normal anatomy of the first film (before its findings)
    bone_seed: int  # the ribs' irregularities
    seeds: tuple[int, ...]  # the first film's anatomy, findings, texture, vessel, noise seeds
    first_findings: frozenset[str]  # the first film's findings (the vessel tree grows on them)


def phantom_patient(rng: np.random.Generator,
                    first_findings: frozenset[str] = frozenset()) -> PhantomPatient:
    """The patient whose first film ``render_phantom_detailed(size, first_findings, rng)``
    draws (``rng`` is advanced the same way)."""
    seeds = stream_seeds(rng)
    a_rng = np.random.default_rng(seeds[0])
    anatomy = anat.sample_anatomy(a_rng)
    bone_seed = int(a_rng.integers(0, 2**63 - 1))
    findings = frozenset(first_findings)
    fnd.check_findings(findings)
    return PhantomPatient(anatomy, bone_seed, seeds, findings)


def render_follow_up(size: int, findings: frozenset[str], patient: PhantomPatient,
                     rng: np.random.Generator, visit: Visit | None = None) -> RenderedPhantom:
    """A later film of ``patient`` showing exactly ``findings``.

    ``rng`` draws the visit (unless ``visit`` is given), the findings' placement, bowel gas
    and noise; everything else is the patient's. Returns ``[size, size]`` float32 in [0, 1]
    in ``image``, with the film's anatomy, lesions and visit.
    """
    _check_size(size)
    findings = frozenset(findings)
    fnd.check_findings(findings)
    visit_seed, findings_seed, gas_seed, noise_seed = (
        int(s) for s in rng.integers(0, 2**63 - 1, size=4))
    if visit is None:
        visit = sample_visit(np.random.default_rng(visit_seed))
    first, _ = fnd.plan_findings(patient.anatomy, patient.first_findings,
                                 np.random.default_rng(patient.seeds[1]))
    tree = grow_trees(first, coarse_lung(first), np.random.default_rng(patient.seeds[3]))
    a, plan = fnd.plan_findings(visit.apply(patient.anatomy), findings,
                                np.random.default_rng(findings_seed))
    atten = attenuation_map(
        size, a, plan, move_tree(tree, first, a), coarse_lung(a),
        bone_rng=np.random.default_rng(patient.bone_seed),
        texture_rng=np.random.default_rng(patient.seeds[2]),
        gas_rng=np.random.default_rng(gas_seed))
    image = processed_image(reposition(atten, visit), a, np.random.default_rng(noise_seed))
    return RenderedPhantom(image=image, anatomy=a, findings=findings, lesions=tuple(plan),
                           visit=visit)


def move_tree(tree: VesselTree, source: Anatomy, target: Anatomy) -> VesselTree:
    """The vessel tree grown in ``source`` carried into ``target``'s lungs.

    Vertically piecewise linear through the apex, the hilum and the costophrenic angles (a
    deeper breath stretches the lower lobes), laterally scaled by each hemithorax's width;
    calibres follow ``vessel_scale`` (oedema widens, emphysema prunes).
    """
    def knots(a: Anatomy) -> np.ndarray:
        low = 0.5 * (a.costophrenic_y(RIGHT) + a.costophrenic_y(LEFT))
        return np.array([a.apex_y, a.hilum_y, low])

    src, dst = knots(source), knots(target)
    seg = tree.segments.copy()
    for col in (1, 3):
        y = seg[:, col]
        upper = dst[0] + (y - src[0]) * (dst[1] - dst[0]) / (src[1] - src[0])
        lower = dst[1] + (y - src[1]) * (dst[2] - dst[1]) / (src[2] - src[1])
        seg[:, col] = np.where(y < src[1], upper, lower)
    for side in (RIGHT, LEFT):
        scale = target.half_width(side) / source.half_width(side)
        pick = tree.side == side
        for col in (0, 2):
            seg[pick, col] = target.midline + (seg[pick, col] - source.midline) * scale
    radii = tree.radii * (target.vessel_scale / source.vessel_scale)
    return VesselTree(seg, radii, tree.generation, tree.side)


def reposition(image: np.ndarray, visit: Visit) -> np.ndarray:
    """Move ``image`` ([size, size]) as the patient moved: rotate by ``visit.rotation_deg``
    (counter-clockwise as displayed) about the centre, then shift by ``visit.shift_x`` and
    ``visit.shift_y`` (fractions of the field; positive = right, down). Cubic spline; the
    border is extended (the body continues beyond the field)."""
    if visit.rotation_deg == 0 and visit.shift_x == 0 and visit.shift_y == 0:
        return image
    size = image.shape[0]
    theta = np.deg2rad(visit.rotation_deg)
    c, s = np.cos(theta), np.sin(theta)
    # output pixel q (row, col) samples the input at centre + R^T (q - centre - shift); R
    # turns counter-clockwise on screen (y down): x' = c x + s y, y' = -s x + c y
    inverse = np.array([[c, s], [-s, c]])  # R^T in (row, col) order
    centre = np.full(2, (size - 1) / 2.0)
    shift = np.array([visit.shift_y, visit.shift_x]) * size
    offset = centre - inverse @ (centre + shift)
    out = ndimage.affine_transform(image.astype(np.float64), inverse, offset=offset, order=3,
                                   mode="nearest")
    return out.astype(np.float32)
