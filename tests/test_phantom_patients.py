"""Phantom patients with follow-up films: the same anatomy on every film of a patient, a
ChestX-ray14-like number of films per patient, ChestX-ray14 names and label rows, the
prefix and resume properties of the set, and patient-wise splits that mean something."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.core.output_lock import OutputFolderError
from cxrgan_desktop.imaging.phantom.followup import (
    MAX_ROTATION_DEG,
    MAX_SHIFT,
    Visit,
    phantom_patient,
    render_follow_up,
)
from cxrgan_desktop.imaging.phantom.render import render_phantom_detailed
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv
from cxrgan_desktop.labels.distribution import LabelDistribution
from cxrgan_desktop.metrics.relative_fd import patient_id_of
from cxrgan_desktop.tasks.phantom import CSV_NAME, MANIFEST_NAME, write_phantoms
from cxrgan_desktop.tasks.phantom_patients import (
    P_ONE_IMAGE,
    TAIL_EXPONENT,
    chestxray14_probabilities,
    follow_up_count,
    layout,
)

SIZE = 64
# what a film may change of a patient's anatomy (the visit's breath and exposure)
VISIT_FIELDS = {"dome_right_y", "dome_left_y", "hilum_y", "exposure", "contrast", "noise"}


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def undo(image: np.ndarray, visit: Visit, sign: float = 1.0) -> np.ndarray:
    """Move a follow-up back with scipy's shift and rotate (not the renderer's own affine
    transform): the visit shifted after rotating counter-clockwise, so shift back, then
    rotate clockwise."""
    size = image.shape[0]
    back = ndimage.shift(image.astype(np.float64), (-visit.shift_y * size, -visit.shift_x * size),
                         order=3, mode="nearest")
    return ndimage.rotate(back, -sign * visit.rotation_deg, reshape=False, order=3,
                          mode="nearest")


def lung_detail(image: np.ndarray) -> np.ndarray:
    """Unit vector of the fine detail (vessels, texture, ribs) of the upper and middle lung
    zones, where breath and findings change least: inner product = correlation."""
    size = image.shape[0]
    detail = image - ndimage.gaussian_filter(image.astype(np.float64), 1.0)
    zone = detail[int(0.2 * size):int(0.55 * size), int(0.15 * size):int(0.85 * size)].ravel()
    zone = zone - zone.mean()
    return zone / np.linalg.norm(zone)


# -- the renderer ----------------------------------------------------------------------------

def test_follow_ups_keep_the_anatomy_and_change_the_film() -> None:
    first = render_phantom_detailed(SIZE, frozenset(), rng(7))
    patient = phantom_patient(rng(7))
    other = phantom_patient(rng(8))
    films = [render_follow_up(SIZE, frozenset(), patient, rng(100 + j)) for j in range(3)]
    for film in films:
        changed = {f.name for f in dataclasses.fields(first.anatomy)
                   if getattr(film.anatomy, f.name) != getattr(first.anatomy, f.name)}
        assert changed <= VISIT_FIELDS, changed
        assert np.abs(film.image - first.image).mean() > 0.01  # not the same film
        assert film.visit is not None
        assert abs(film.visit.shift_x) <= MAX_SHIFT and abs(film.visit.shift_y) <= MAX_SHIFT
        assert abs(film.visit.rotation_deg) <= MAX_ROTATION_DEG
    assert np.abs(films[0].image - films[1].image).mean() > 0.01
    different = {f.name for f in dataclasses.fields(first.anatomy)
                 if getattr(other.anatomy, f.name) != getattr(first.anatomy, f.name)}
    assert len(different - VISIT_FIELDS) > 10  # another patient: another skeleton, heart ...
    # a follow-up with no visit at all (same place, breath and exposure) is the first film
    # but for the quantum noise: the same outlines, and in the lungs the same vessels, texture
    # and ribs, differing by what two independent noise draws differ by (the expected mean
    # absolute difference of two normal draws of the renderer's noise sigma at each pixel)
    still = render_follow_up(SIZE, frozenset(), patient, rng(5), visit=Visit())
    assert still.anatomy == first.anatomy
    zone = (slice(int(0.2 * SIZE), int(0.55 * SIZE)), slice(int(0.15 * SIZE), int(0.85 * SIZE)))
    sigma = first.anatomy.noise * np.sqrt(SIZE / 1024) * (0.4 + first.image[zone])
    noise_only = np.sqrt(2 / np.pi) * np.sqrt(2) * sigma.mean()
    assert np.abs(still.image[zone] - first.image[zone]).mean() < 1.25 * noise_only
    # and the same call draws the same film
    again = render_follow_up(SIZE, frozenset(), patient, rng(100))
    np.testing.assert_array_equal(again.image, films[0].image)


def test_a_follow_up_is_recognisably_its_patient_after_undoing_the_move() -> None:
    """Re-identification from the pixels: each follow-up (breath, exposure, position and
    noise all redrawn), moved back with scipy, correlates best with its own patient's first
    film among 8 patients'."""
    patients = range(8)
    firsts = np.stack([lung_detail(render_phantom_detailed(SIZE, frozenset(), rng(s)).image)
                       for s in patients])
    for s in patients:
        patient = phantom_patient(rng(s))
        for j in range(2):
            film = render_follow_up(SIZE, frozenset(), patient, rng(1000 + 10 * s + j))
            similarity = firsts @ lung_detail(undo(film.image, film.visit))
            assert int(np.argmax(similarity)) == s, (s, j, similarity)


def test_the_move_is_the_documented_one() -> None:
    """Counter-clockwise rotation then a shift right and up: undoing exactly that restores the
    first film far better than undoing the opposite rotation or nothing."""
    first = render_phantom_detailed(SIZE, frozenset(), rng(3)).image
    patient = phantom_patient(rng(3))
    visit = Visit(shift_x=MAX_SHIFT, shift_y=-0.02, rotation_deg=MAX_ROTATION_DEG)
    moved = render_follow_up(SIZE, frozenset(), patient, rng(4), visit=visit).image
    target = lung_detail(first)
    right = target @ lung_detail(undo(moved, visit))
    wrong = target @ lung_detail(undo(moved, visit, sign=-1))
    none = target @ lung_detail(moved)
    assert right > 0.9 and right > wrong + 0.2 and right > none + 0.2, (right, wrong, none)


# -- images per patient ----------------------------------------------------------------------

def test_chestxray14_distribution_has_the_datasets_mean() -> None:
    p = chestxray14_probabilities()
    assert p.size == 50 and p.sum() == pytest.approx(1.0) and p[0] == pytest.approx(P_ONE_IMAGE)
    # the truncated power law's mean from its definition, summed exactly in Python
    def partial(s: float) -> float:
        return math.fsum(k ** -s for k in range(2, 51))

    mean = P_ONE_IMAGE + (1 - P_ONE_IMAGE) * partial(TAIL_EXPONENT - 1) / partial(TAIL_EXPONENT)
    assert mean == pytest.approx(112_120 / 30_805, abs=5e-4)


def test_counts_per_patient_follow_the_distribution() -> None:
    n = 4000
    counts = np.array([follow_up_count(11, q, "chestxray14") for q in range(n)])
    assert counts.min() >= 1 and counts.max() <= 50
    k = np.arange(1, 51)
    p = chestxray14_probabilities()
    mean = float(p @ k)
    sd = float(np.sqrt(p @ k**2 - mean**2))
    assert abs(counts.mean() - mean) < 4 * sd / np.sqrt(n), counts.mean()
    ones_sd = np.sqrt(P_ONE_IMAGE * (1 - P_ONE_IMAGE) / n)
    assert abs((counts == 1).mean() - P_ONE_IMAGE) < 4 * ones_sd
    assert counts.max() >= 20  # heavily skewed: a few patients with dozens
    assert [follow_up_count(11, q, "chestxray14") for q in range(5)] == list(counts[:5])
    assert {follow_up_count(11, q, 3) for q in range(50)} == {3}


# -- the set ---------------------------------------------------------------------------------

def _csv_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / CSV_NAME, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_names_and_label_rows_carry_patient_and_follow_up(tmp_path: Path) -> None:
    folder = write_phantoms(tmp_path / "set", n=20, size=16, seed=2)
    names = sorted(p.name for p in folder.glob("*.png"))
    assert len(names) == 20
    # the reference: the ChestX-ray14 name itself, {patient:08d}_{follow-up:03d}.png
    from_names = [(int(name[:8]), int(name[9:12])) for name in names]
    assert all(pid >= 900_000 for pid, _ in from_names)
    assert len({pid for pid, _ in from_names}) < 20  # patients with several films
    entries = read_data_entry_csv(folder / CSV_NAME)
    assert [e.image_index for e in entries] == names
    assert [(e.patient_id, e.follow_up) for e in entries] == from_names
    rows = _csv_rows(folder)
    assert [(int(r["Patient ID"]), int(r["Follow-up #"])) for r in rows] == from_names
    assert [patient_id_of(name) for name in names] == [f"{pid:08d}" for pid, _ in from_names]
    for pid in {pid for pid, _ in from_names}:
        mine = [e for e in entries if e.patient_id == pid]
        assert [e.follow_up for e in mine] == list(range(len(mine)))  # 0, 1, 2 ...
        assert len({e.gender for e in mine}) == 1
        ages = [e.age for e in mine]
        assert ages == sorted(ages) and ages[-1] - ages[0] <= 5
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["format"] == "cxrgan-phantom-set/2"
    assert manifest["images_per_patient"] == "chestxray14"
    assert manifest["n"] == 20 and manifest["patients"] == len({p for p, _ in from_names})
    assert manifest["complete"] is True


def test_a_short_run_is_the_start_of_a_long_one(tmp_path: Path) -> None:
    order = layout(4, "chestxray14", 30)
    # a cut that leaves a patient short, so the prefix includes a partial patient
    cut = next(k for k in range(2, 30) if order[k - 1][0] == order[k][0])
    short = write_phantoms(tmp_path / "short", n=cut, size=16, seed=4)
    long = write_phantoms(tmp_path / "long", n=30, size=16, seed=4)
    short_names = sorted(p.name for p in short.glob("*.png"))
    assert short_names == sorted(p.name for p in long.glob("*.png"))[:cut]
    for name in short_names:
        assert (short / name).read_bytes() == (long / name).read_bytes()
    assert _csv_rows(short) == _csv_rows(long)[:cut]
    # image (p, f) depends on (seed, p, f) only: the same file whatever the patients' counts
    fixed = write_phantoms(tmp_path / "fixed", n=6, size=16, seed=4, images_per_patient=2)
    shared = {p.name for p in fixed.glob("*.png")} & set(short_names)
    assert shared
    for name in shared:
        assert (fixed / name).read_bytes() == (short / name).read_bytes()


def test_a_cancelled_run_resumes_to_the_same_set(tmp_path: Path) -> None:
    straight = write_phantoms(tmp_path / "straight", n=12, size=16, seed=6)
    cancel = threading.Event()

    def progress(fraction: float, message: str = "") -> None:
        if fraction > 0.4:
            cancel.set()

    with pytest.raises(Cancelled):
        write_phantoms(tmp_path / "resumed", n=12, size=16, seed=6, progress=progress,
                       cancel=cancel)
    partial = read_data_entry_csv(tmp_path / "resumed" / CSV_NAME)
    assert 0 < len(partial) < 12
    resumed = write_phantoms(tmp_path / "resumed", n=12, size=16, seed=6)
    for name in (CSV_NAME, *(p.name for p in straight.glob("*.png"))):
        assert (resumed / name).read_bytes() == (straight / name).read_bytes()
    with pytest.raises(OutputFolderError, match="images per patient"):
        write_phantoms(resumed, n=12, size=16, seed=6, images_per_patient=1)


def test_a_format_1_folder_is_refused(tmp_path: Path, capsys) -> None:
    from cxrgan_desktop import cli

    old = tmp_path / "old"
    old.mkdir()
    write_png16(old / "phantom_00000.png", np.full((16, 16), 0.5, dtype=np.float32))
    (old / MANIFEST_NAME).write_text(json.dumps({"format": "cxrgan-phantom-set/1"}))
    before = sorted(p.name for p in old.iterdir())
    with pytest.raises(OutputFolderError, match="format-1") as error:
        write_phantoms(old, n=3, size=16, seed=0)
    assert str(old) in str(error.value) and "choose a new folder" in str(error.value)
    assert sorted(p.name for p in old.iterdir()) == before
    only_manifest = tmp_path / "manifest_only"
    only_manifest.mkdir()
    (only_manifest / MANIFEST_NAME).write_text(json.dumps({"format": "cxrgan-phantom-set/1"}))
    with pytest.raises(OutputFolderError, match="format-1"):
        write_phantoms(only_manifest, n=3, size=16, seed=0)
    assert cli.main(["phantom", "--n", "3", "--size", "16", "--out", str(old)]) == 2
    assert "choose a new folder" in capsys.readouterr().err


def test_cli_images_per_patient(tmp_path: Path, capsys) -> None:
    from cxrgan_desktop import cli

    assert cli.main(["phantom", "--n", "7", "--size", "16", "--images-per-patient", "3",
                     "--out", str(tmp_path / "k3")]) == 0
    assert "wrote 7 phantom images of 3 patients" in capsys.readouterr().out
    rows = _csv_rows(tmp_path / "k3")
    assert [int(r["Follow-up #"]) for r in rows] == [0, 1, 2, 0, 1, 2, 0]
    assert cli.main(["phantom", "--n", "3", "--size", "16", "--images-per-patient", "0",
                     "--out", str(tmp_path / "bad")]) == 2
    assert "images per patient" in capsys.readouterr().err


# -- patient-wise splits ----------------------------------------------------------------------

def test_classifier_validation_split_keeps_patients_whole(tmp_path: Path, monkeypatch) -> None:
    """The classifier's own training call splits a phantom set with follow-ups so that no
    patient (as the file names say) is on both sides."""
    import torch

    from cxrgan_desktop.engine.classifier import training
    from cxrgan_desktop.engine.classifier.data import labelled_images
    from cxrgan_desktop.engine.training.dataset import DatasetSpec

    dist = LabelDistribution.independent({"Effusion": 0.5})
    folder = write_phantoms(tmp_path / "set", n=48, size=32, seed=9, distribution=dist)
    data = labelled_images(DatasetSpec(folder, folder / CSV_NAME), ("Effusion",), 32,
                           cache_dir=tmp_path / "cache")
    splits = []
    real_split = training.patient_split

    def recording_split(ids, fraction, seed):
        splits.append(real_split(ids, fraction, seed))
        return splits[-1]

    monkeypatch.setattr(training, "patient_split", recording_split)
    config = training.ClassifierTrainConfig(
        name="split", architecture="densenet-small", input_size=32, labels=("Effusion",),
        epochs=1, batch_size=8, val_fraction=0.3, augment=False)
    training.train_classifier(config, data, tmp_path / "c.safetensors",
                              device=torch.device("cpu"))
    (train, val), = splits
    names = [Path(rel).name for rel in data.cache.files]
    patient = np.array([patient_id_of(name) for name in names])
    assert len(set(patient)) < len(names)  # follow-ups to keep together
    assert len(train) and len(val) and len(train) + len(val) == len(names)
    assert not set(patient[train]) & set(patient[val])


def test_one_image_per_patient_is_the_format_1_set(tmp_path: Path) -> None:
    """K = 1 renders what format 1 rendered for image k (its recipe: labels and renderer from
    the two children of SeedSequence([seed, k])), under the new names."""
    from cxrgan_desktop.imaging.phantom.render import render_phantom
    from cxrgan_desktop.imaging.png16 import read_png16

    folder = write_phantoms(tmp_path / "k1", n=4, size=32, seed=3, images_per_patient=1)
    dist = LabelDistribution.chestxray14()
    entries = read_data_entry_csv(folder / CSV_NAME)
    for k, entry in enumerate(entries):
        label_seq, render_seq = np.random.SeedSequence([3, k]).spawn(2)
        labels = dist.sample(np.random.default_rng(label_seq))
        expected = render_phantom(32, labels, np.random.default_rng(render_seq))
        assert entry.image_index == f"{900_000 + k:08d}_000.png" and entry.findings == labels
        np.testing.assert_allclose(read_png16(folder / entry.image_index), expected,
                                   atol=0.5 / 65535)
