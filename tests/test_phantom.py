"""The chest phantom: determinism, sizes, label-faithful findings measured on the pixels,
label statistics, and the writing job."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import cxrgan_desktop
from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.imaging.phantom import FIELD_OF_VIEW_MM, render_phantom, render_phantom_detailed
from cxrgan_desktop.imaging.png16 import read_png16
from cxrgan_desktop.labels.chestxray14 import FINDINGS, read_data_entry_csv
from cxrgan_desktop.labels.distribution import (
    LabelDistribution,
    compute_label_stats,
    load_shipped_stats,
)
from cxrgan_desktop.tasks.phantom import write_phantoms

REAL_CSV = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
            / "Data_Entry_2017_v2020.csv.gz")
SEEDS = (0, 1, 2, 3)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def render(size: int, findings: set[str] | frozenset[str], seed: int):
    return render_phantom_detailed(size, frozenset(findings), rng(seed))


def mean_box(image: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> float:
    n = image.shape[0]
    return float(image[int(y0 * n):int(y1 * n), int(x0 * n):int(x1 * n)].mean())


# -- basic contract ------------------------------------------------------------------------------

def test_same_seed_same_pixels_different_seed_different() -> None:
    a = render_phantom(64, frozenset({"Effusion"}), rng(5))
    b = render_phantom(64, frozenset({"Effusion"}), rng(5))
    c = render_phantom(64, frozenset({"Effusion"}), rng(6))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256, 512, 1024, 48, 100])
def test_every_size_dtype_and_range(size: int) -> None:
    image = render_phantom(size, frozenset({"Nodule", "Effusion", "Pneumothorax"}), rng(1))
    assert image.shape == (size, size) and image.dtype == np.float32
    assert np.isfinite(image).all()
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert image.std() > 0.1  # not blank


def test_bad_size_and_unknown_finding() -> None:
    with pytest.raises(ValueError, match="size"):
        render_phantom(8, frozenset(), rng(0))
    with pytest.raises(ValueError, match="size"):
        render_phantom(2048, frozenset(), rng(0))
    with pytest.raises(ValueError, match="Pneumo"):
        render_phantom(32, frozenset({"Pneumo"}), rng(0))


def test_same_anatomy_at_every_size() -> None:
    big = render_phantom(256, frozenset({"Mass"}), rng(9))
    small = render_phantom(64, frozenset({"Mass"}), rng(9))
    other = render_phantom(64, frozenset({"Mass"}), rng(10))
    pooled = big.reshape(64, 4, 64, 4).mean(axis=(1, 3))
    assert np.corrcoef(pooled.ravel(), small.ravel())[0, 1] > 0.97
    assert np.abs(pooled - small).mean() < np.abs(other - small).mean() / 2


def test_normal_anatomy_on_the_pixels() -> None:
    """Air outside the body dark (beside the flank, below where the arms leave the field),
    lungs darker than the mediastinum, abdomen bright, and the heart bulging to the image
    right (patient's left)."""
    for seed in SEEDS:
        r = render(128, (), seed)
        img, a = r.image, r.anatomy
        air = mean_box(img, 0.0, 0.03, 0.85, 0.95)
        lung_r = mean_box(img, a.midline - 0.3, a.midline - 0.15, 0.3, 0.5)
        lung_l = mean_box(img, a.midline + 0.15, a.midline + 0.3, 0.3, 0.5)
        mediastinum = mean_box(img, a.midline - 0.03, a.midline + 0.03, 0.3, 0.45)
        abdomen = mean_box(img, a.midline - 0.2, a.midline + 0.2, 0.88, 0.95)
        assert air < 0.1 < lung_r < mediastinum - 0.25
        assert lung_l < mediastinum - 0.25 and abdomen > lung_r + 0.3
        assert a.cardiac_width * (1 - a.heart_right_fraction) > a.cardiac_width / 2
        assert a.dome_right_y < a.dome_left_y  # right hemidiaphragm higher


# -- findings, measured on the pixels -----------------------------------------------------------

def _heart_width(image: np.ndarray, a) -> float:
    """Transverse cardiac diameter as a radiologist measures it, normalised: the greatest
    distance of the right heart border from the midline plus that of the left border (often
    at different levels), from rows between the hila and just above each dome. In each row
    the bright central run (mediastinum and heart) is followed out to where it falls halfway
    to the darkest lung."""
    n = image.shape[0]
    c = int(a.midline * n)
    extent = {-1: 0.0, 1: 0.0}
    for y in np.linspace(a.hilum_y + 0.06, max(a.dome_left_y, a.dome_right_y) - 0.02, 14):
        row = ndimage.uniform_filter1d(image[int(y * n)], 3)
        lung = np.percentile(row[int((a.midline - 0.35) * n):int((a.midline + 0.35) * n)], 10)
        threshold = (lung + row[c]) / 2
        for side in (-1, 1):
            if y > (a.dome_right_y if side < 0 else a.dome_left_y) - 0.02:
                continue  # at the dome the heart border meets the diaphragm
            x = c
            while 0 < x < n - 1 and row[x] > threshold:
                x += side
            extent[side] = max(extent[side], abs(x - a.midline * n) / n)
    return extent[-1] + extent[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_cardiomegaly_ctr_measured_on_pixels(seed: int) -> None:
    normal = render(128, (), seed)
    big = render(128, {"Cardiomegaly"}, seed)
    assert normal.anatomy.cardiothoracic_ratio < 0.5 < big.anatomy.cardiothoracic_ratio
    ctr_normal = _heart_width(normal.image, normal.anatomy) / normal.anatomy.thoracic_width
    ctr_big = _heart_width(big.image, big.anatomy) / big.anatomy.thoracic_width
    assert ctr_normal < 0.5 < ctr_big


@pytest.mark.parametrize("seed", SEEDS)
def test_effusion_fills_the_costophrenic_angle(seed: int) -> None:
    base, eff = render(128, (), seed), render(128, {"Effusion"}, seed)
    a, d = base.anatomy, eff.image - base.image
    rises = []
    for side in (-1, 1):
        w, cp = a.half_width(side), a.costophrenic_y(side)
        x0, x1 = sorted((a.midline + side * 0.12, a.midline + side * w))
        rises.append(mean_box(d, x0, x1, cp - 0.08, cp))
    lesion = eff.lesions[0]
    assert max(rises) > 0.05
    if lesion.side:  # one-sided: the other angle stays as it was
        index = 0 if lesion.side == -1 else 1
        assert rises[index] > 0.05
        assert abs(rises[1 - index]) < 0.02


@pytest.mark.parametrize("seed", SEEDS)
def test_pneumothorax_darkens_the_periphery(seed: int) -> None:
    base, ptx = render(256, (), seed), render(256, {"Pneumothorax"}, seed)
    a, side = base.anatomy, ptx.lesions[0].side
    x = a.midline + side * a.half_width(side) * 0.88
    box = (x - 0.03, x + 0.03, a.apex_y + 0.12, a.hilum_y)
    assert mean_box(ptx.image - base.image, *box) < -0.015
    # the collapsed lung keeps its markings: the medial lung is not darkened
    xm = a.midline + side * 0.13
    assert mean_box(ptx.image - base.image, xm - 0.02, xm + 0.02, a.hilum_y,
                    a.hilum_y + 0.1) > -0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_emphysema_darkens_and_lowers(seed: int) -> None:
    base, emph = render(128, (), seed), render(128, {"Emphysema"}, seed)
    a, d = base.anatomy, emph.image - base.image
    assert mean_box(d, a.midline - 0.3, a.midline - 0.15, 0.3, 0.5) < -0.1
    assert mean_box(d, a.midline + 0.15, a.midline + 0.3, 0.3, 0.5) < -0.1
    assert emph.anatomy.dome_right_y > a.dome_right_y + 0.04
    assert emph.anatomy.dome_height < a.dome_height


@pytest.mark.parametrize(("finding", "lo", "hi"), [("Nodule", 5.0, 30.0), ("Mass", 30.0, 85.0)])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_nodule_and_mass_are_bright_blobs_of_the_right_size(finding, lo, hi, seed) -> None:
    base, with_lesion = render(256, (), seed), render(256, {finding}, seed)
    d = with_lesion.image - base.image
    peak = np.unravel_index(d.argmax(), d.shape)
    labels, _ = ndimage.label(d > 0.25 * d.max())
    area_mm2 = (labels == labels[peak]).sum() * (FIELD_OF_VIEW_MM / 256) ** 2
    diameter = 2 * np.sqrt(area_mm2 / np.pi)
    assert lo < diameter < hi
    assert d.max() > 0.04
    x, y = with_lesion.lesions[0].center
    assert abs(peak[1] / 256 - x) < 0.03 and abs(peak[0] / 256 - y) < 0.03


@pytest.mark.parametrize("finding", ["Consolidation", "Pneumonia", "Infiltration",
                                     "Atelectasis", "Fibrosis", "Pleural_Thickening"])
def test_opacities_raise_intensity_inside_the_lungs(finding: str) -> None:
    for seed in SEEDS[:2]:
        base, sick = render(128, (), seed), render(128, {finding}, seed)
        d = sick.image - base.image
        assert d.max() > 0.1
        assert (d > 0.08).sum() > 2 * (d < -0.08).sum()  # mostly brighter


def test_edema_is_bilateral_and_perihilar() -> None:
    for seed in SEEDS[:2]:
        base, ed = render(128, (), seed), render(128, {"Edema"}, seed)
        a, d = base.anatomy, ed.image - base.image
        for side in (-1, 1):
            x0, x1 = sorted((a.midline + side * 0.09, a.midline + side * 0.2))
            assert mean_box(d, x0, x1, a.hilum_y - 0.05, a.hilum_y + 0.08) > 0.08


def test_hernia_is_retrocardiac() -> None:
    base, her = render(128, (), 0), render(128, {"Hernia"}, 0)
    x0, y0, x1, y1 = her.lesions[0].bbox()
    d = np.abs(her.image - base.image)
    assert mean_box(d, x0, x1, y0, y1) > 0.03
    assert abs((x0 + x1) / 2 - base.anatomy.midline) < 0.05


def test_adding_a_finding_does_not_move_another() -> None:
    one = render(128, {"Nodule"}, 4)
    two = render(128, {"Nodule", "Pneumothorax"}, 4)
    assert one.lesions[0] == next(les for les in two.lesions if les.finding == "Nodule")


# -- label statistics ------------------------------------------------------------------------

def test_shipped_stats_match_the_real_file() -> None:
    if not REAL_CSV.exists():
        pytest.skip(f"real ChestX-ray14 label file not found at {REAL_CSV} (../shared/data)")
    assert compute_label_stats(REAL_CSV) == load_shipped_stats()


def test_default_distribution_reproduces_prevalence_and_cooccurrence() -> None:
    dist = LabelDistribution.chestxray14()
    stats = load_shipped_stats()
    n_real = stats["n_images"]
    expected = {f: c / n_real for f, c in stats["label_counts"].items()}
    assert dist.prevalence() == pytest.approx(expected, abs=1e-9)
    samples = dist.sample(rng(0), 6000)
    for f in FINDINGS:
        observed = sum(f in s for s in samples) / len(samples)
        sigma = np.sqrt(expected[f] * (1 - expected[f]) / len(samples))
        assert abs(observed - expected[f]) < 4 * sigma + 0.002, f
    no_finding = sum(not s for s in samples) / len(samples)
    assert no_finding == pytest.approx(0.538, abs=0.025)
    both = sum({"Effusion", "Atelectasis"} <= s for s in samples) / len(samples)
    matrix = dist.cooccurrence()
    i, j = FINDINGS.index("Effusion"), FINDINGS.index("Atelectasis")
    assert both == pytest.approx(matrix[i, j], abs=0.01)
    assert matrix[i, j] > 2 * matrix[i, i] * matrix[j, j]  # real co-occurrence, not independent


def test_independent_forced_and_excluded() -> None:
    ind = LabelDistribution.independent({"Nodule": 0.5, "Mass": 0.1})
    samples = ind.sample(rng(1), 3000)
    assert sum("Nodule" in s for s in samples) / 3000 == pytest.approx(0.5, abs=0.04)
    assert all(s <= {"Nodule", "Mass"} for s in samples)
    forced = LabelDistribution.chestxray14().with_constraints(forced={"Hernia"},
                                                              excluded={"Effusion"})
    samples = forced.sample(rng(2), 500)
    assert all("Hernia" in s and "Effusion" not in s for s in samples)
    assert any(len(s) > 1 for s in samples)  # conditioned: keeps realistic companions
    with pytest.raises(ValueError, match="Pneumo"):
        LabelDistribution.independent({"Pneumo": 0.1})
    again = LabelDistribution.from_json(json.loads(json.dumps(forced.to_json())))
    assert again.prevalence() == pytest.approx(forced.prevalence())


# -- the job -------------------------------------------------------------------------------

def test_write_phantoms_folder_and_resume(tmp_path: Path) -> None:
    full = write_phantoms(tmp_path / "full", n=5, size=32, seed=3, images_per_patient=1)
    entries = read_data_entry_csv(full / "Data_Entry_phantom.csv")
    assert [e.image_index for e in entries] == [f"{900000 + k:08d}_000.png" for k in range(5)]
    assert all(e.view_position == "PA" and e.width == 32 for e in entries)
    assert entries[0].pixel_spacing_x == pytest.approx(FIELD_OF_VIEW_MM / 32)
    manifest = json.loads((full / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["n"] == 5 and manifest["size"] == 32
    assert manifest["software_version"] == cxrgan_desktop.__version__
    assert manifest["label_distribution"]["kind"] == "empirical"
    image = read_png16(full / "00900004_000.png")
    assert image.shape == (32, 32) and image.std() > 0.05

    part = write_phantoms(tmp_path / "part", n=2, size=32, seed=3, images_per_patient=1)
    write_phantoms(part, n=5, size=32, seed=3, images_per_patient=1)  # extend
    for k in range(5):
        name = f"{900000 + k:08d}_000.png"
        assert (part / name).read_bytes() == (full / name).read_bytes()
    assert (part / "Data_Entry_phantom.csv").read_text() == (
        full / "Data_Entry_phantom.csv").read_text()
    with pytest.raises(ValueError, match="other settings"):
        write_phantoms(part, n=5, size=64, seed=3, images_per_patient=1)


def test_write_phantoms_cancel_leaves_whole_files(tmp_path: Path) -> None:
    cancel = threading.Event()
    calls = []

    def progress(fraction: float, message: str = "") -> None:
        calls.append(fraction)
        if len(calls) == 2:
            cancel.set()

    dist = LabelDistribution.independent({"Nodule": 1.0})
    with pytest.raises(Cancelled):
        write_phantoms(tmp_path, n=6, size=32, seed=1, distribution=dist,
                       progress=progress, cancel=cancel, images_per_patient=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00900000_000.png", "00900001_000.png", "Data_Entry_phantom.csv", "manifest.json"]
    entries = read_data_entry_csv(tmp_path / "Data_Entry_phantom.csv")
    assert len(entries) == 2 and all(e.findings == {"Nodule"} for e in entries)
    write_phantoms(tmp_path, n=6, size=32, seed=1, distribution=dist,
                   images_per_patient=1)  # resume
    assert len(read_data_entry_csv(tmp_path / "Data_Entry_phantom.csv")) == 6


def test_cli_phantom_writes_images_and_labels(tmp_path, capsys):
    from cxrgan_desktop import cli
    from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv

    assert cli.main(["phantom", "--n", "3", "--size", "32", "--seed", "4",
                     "--images-per-patient", "1", "--out", str(tmp_path)]) == 0
    assert "wrote 3 phantom images of 3 patients" in capsys.readouterr().out
    entries = read_data_entry_csv(tmp_path / "Data_Entry_phantom.csv")
    assert [e.image_index for e in entries] == [f"0090000{i}_000.png" for i in range(3)]
    assert cli.main(["phantom", "--n", "3", "--size", "8", "--out", str(tmp_path / "x")]) == 2


def test_cli_job_cancel_exits_130(tmp_path, monkeypatch, capsys):
    from cxrgan_desktop import cli
    from cxrgan_desktop.cli import progress as cli_progress
    from cxrgan_desktop.core.jobs import Cancelled

    def cancelled_job(job, total, unit, description, kept):
        raise cli_progress.JobCancelled(f"cancelled; {kept}") from Cancelled()

    monkeypatch.setattr(cli_progress, "run_job", cancelled_job)
    code = cli.main(["phantom", "--n", "2", "--size", "32", "--out", str(tmp_path)])
    assert code == cli.EXIT_CANCELLED
    assert "finished images are listed" in capsys.readouterr().err
