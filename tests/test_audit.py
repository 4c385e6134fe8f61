"""The memorisation audit, end to end on phantom patients with planted copies.

The answers are known: each planted synthetic image is a transformed copy of one training
patient's image (or that patient's follow-up never trained on), and the rest are a model's
generates. The calibration is checked against its definition by counting.
"""

from __future__ import annotations

import csv
import json
import shutil
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.tasks.audit import AuditOptions, Calibration, run_audit
from cxrgan_desktop.tasks.audit_file import read_flagged
from tests.reference.planted_copies import KINDS, build_scene, recall

N_GENERATES = 200
COPY_KINDS = ("exact", "noise", "window_level", "jpeg", "half_resize")


def _generates(n: int) -> np.ndarray:
    from cxrgan_desktop.engine.checkpoints import load_generator
    from cxrgan_desktop.engine.render import Renderer
    from cxrgan_desktop.store import zoo

    model = load_generator(zoo.resolve_model("demo-phantom-64"))
    batches = Renderer(model, "cpu").render_seeded(11, n, 50, None)
    return torch.cat(list(batches)).numpy()[:, 0]


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """The user cache of this module's shared audits (module fixtures run before the
    per-test isolation, so they need their own; a test reusing their features points its
    cache here)."""
    folder = tmp_path_factory.mktemp("audit_cache")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("DATA", "CACHE", "CONFIG"):
            patch.setenv(f"CXRGAN_{name}_DIR", str(folder / name.lower()))
        yield folder / "cache"


@pytest.fixture(scope="module")
def scene(module_cache, tmp_path_factory):
    return build_scene(tmp_path_factory.mktemp("audit_scene"), _generates(N_GENERATES))


@pytest.fixture(scope="module")
def pixel_audit(scene, module_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit_out") / "audit"
    options = AuditOptions(train_dir=scene.train_dir, out_dir=out,
                           synthetic=str(scene.synthetic_dir), held_out=scene.held_dir,
                           labels_csv=scene.labels_csv, spaces=("pixels",))
    return options, run_audit(options)


def test_calibration_counts_held_out_images_at_least_as_close():
    rng = np.random.default_rng(0)
    held = rng.uniform(0.2, 0.9, 500).astype(np.float32)
    queries = np.concatenate([rng.uniform(0.0, 1.0, 300), held[:20]]).astype(np.float32)
    for alpha in (0.0, 0.001, 0.01, 0.1):
        cal = Calibration(held, alpha)
        counts = np.array([(held >= q).sum() for q in queries])  # the definition
        assert np.allclose(cal.heldout_fraction(queries), counts / len(held))
        assert (cal.flagged(queries) == (counts <= np.floor(alpha * len(held)))).all()
        flagged = queries[cal.flagged(queries)]
        assert (flagged > cal.threshold).all()
        assert not (queries[~cal.flagged(queries)] > cal.threshold).any()


def test_pixel_space_finds_the_planted_copies(scene, pixel_audit):
    _, report = pixel_audit
    table = recall(report, scene, "pixels")
    assert len(report.rows) == N_GENERATES + len(KINDS) * 3
    for kind in COPY_KINDS:  # the copies a pixel correlation must catch
        assert table[kind] == (3, 3), (kind, table)
    flagged, unplanted = table["false_flags"]
    assert unplanted == N_GENERATES
    assert flagged <= 0.02 * unplanted, table
    for row in report.rows:  # each flagged copy's nearest image is its very source
        planted = scene.planted.get(row.synthetic_file)
        if planted and planted[0] in COPY_KINDS:
            assert row.matches["pixels"].training_file == planted[2]


def test_audit_files_agree_with_each_other(scene, pixel_audit):
    options, report = pixel_audit
    folder = report.folder
    with (folder / "audit.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    flags = [r["flagged"] == "true" for r in rows]
    assert flags == sorted(flags, reverse=True)  # flagged first
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["flagged"] == sum(flags)
    assert summary["train"]["images"] == len(list(scene.train_dir.glob("*.png")))
    assert summary["held_out"]["patients"] == 60
    with (folder / "neighbours.csv").open(newline="") as handle:
        neighbours = list(csv.DictReader(handle))
    assert len(neighbours) == len(rows) * options.k
    by_file = {}
    for n in neighbours:
        by_file.setdefault(n["synthetic_file"], []).append(float(n["similarity"]))
    for r in rows:
        sims = by_file[r["synthetic_file"]]
        assert sims == sorted(sims, reverse=True)
        assert float(r["pixels_similarity"]) == sims[0]
    with Image.open(folder / "contact_sheet.png") as sheet:
        assert sheet.size[0] > 600
    assert (folder / "contact_sheet.pdf").read_bytes().startswith(b"%PDF")
    flagged = read_flagged(folder)
    assert len(flagged.pixel_hashes) == sum(flags)


def test_a_rerun_reuses_the_training_features(scene, pixel_audit, module_cache, tmp_path,
                                              monkeypatch):
    import cxrgan_desktop.metrics.pixel_ncc as ncc

    monkeypatch.setenv("CXRGAN_CACHE_DIR", str(module_cache))
    options, first = pixel_audit
    seen = []
    real = ncc.ncc_vectors
    monkeypatch.setattr(ncc, "ncc_vectors", lambda b, size=32: seen.append(len(b)) or real(
        b, size))
    again = run_audit(AuditOptions(**{**options.__dict__, "out_dir": tmp_path / "again"}))
    assert sum(seen) == 0  # every side's features came from the caches
    assert [r.synthetic_file for r in again.rows] == [r.synthetic_file for r in first.rows]
    assert [r.risk for r in again.rows] == [r.risk for r in first.rows]
    other = tmp_path / "other"
    other.mkdir()
    for name in sorted(scene.planted)[:10]:
        shutil.copyfile(scene.synthetic_dir / name, other / name)
    third = run_audit(AuditOptions(**{**options.__dict__, "out_dir": tmp_path / "third",
                                      "synthetic": str(other)}))
    assert sum(seen) == 10  # a new synthetic folder: only its images were embedded
    assert len(third.rows) == 10


def test_held_out_patients_must_not_be_training_patients(scene, tmp_path):
    options = AuditOptions(train_dir=scene.train_dir, out_dir=tmp_path / "a",
                           synthetic=str(scene.synthetic_dir), held_out=scene.train_dir,
                           labels_csv=scene.labels_csv, spaces=("pixels",))
    with pytest.raises(ValueError, match="also in the training set"):
        run_audit(options)
    assert not (tmp_path / "a" / "audit.csv").exists()


def test_cancel_leaves_no_audit(scene, tmp_path):
    cancel = threading.Event()
    cancel.set()
    options = AuditOptions(train_dir=scene.train_dir, out_dir=tmp_path / "c",
                           synthetic=str(scene.synthetic_dir), held_out=scene.held_dir,
                           labels_csv=scene.labels_csv, spaces=("pixels",))
    with pytest.raises(Cancelled):
        run_audit(options, cancel=cancel)
    assert not (tmp_path / "c" / "audit.csv").exists()


def test_held_out_images_recorded_by_a_training_run(scene, tmp_path):
    """A run folder's held_out.json: those images calibrate, the rest are the training set."""
    from cxrgan_desktop.engine.training.dataset import DatasetSpec, list_dataset
    from cxrgan_desktop.engine.training.holdout import choose_held_out, write_held_out

    listing = list_dataset(DatasetSpec(scene.train_dir, scene.labels_csv))
    held = choose_held_out(listing, 0.25, seed=3)
    run = tmp_path / "run"
    write_held_out(run, held)
    report = run_audit(AuditOptions(train_dir=scene.train_dir, out_dir=tmp_path / "a",
                                    synthetic=str(scene.synthetic_dir), held_out=run,
                                    labels_csv=scene.labels_csv, spaces=("pixels",)))
    summary = report.summary
    assert summary["held_out"]["source"] == "training run"
    assert summary["held_out"]["images"] == len(held.files)
    assert summary["train"]["images"] == len(listing.files) - len(held.files)
    with scene.labels_csv.open(newline="") as handle:  # patients, read independently
        patient_of = {r["Image Index"]: r["Patient ID"] for r in csv.DictReader(handle)}
    held_patients = {patient_of[f] for f in held.files}
    matched = {m.patient for r in report.rows for m in r.matches.values()}
    assert not matched & held_patients  # no held-out image is offered as a training match
    with (report.folder / "neighbours.csv").open(newline="") as handle:
        assert not {r["training_file"] for r in csv.DictReader(handle)} & set(held.files)


def test_a_model_source_is_generated_as_cxrgan_generate_draws_it(scene, tmp_path):
    out = tmp_path / "m"
    report = run_audit(AuditOptions(train_dir=scene.train_dir, out_dir=out,
                                    synthetic="model:demo-phantom-64", n=6, seed=11,
                                    held_out=scene.held_dir, labels_csv=scene.labels_csv,
                                    spaces=("pixels",)))
    files = sorted((out / "synthetic").glob("*.png"))
    assert [f.name for f in files] == sorted(r.synthetic_file for r in report.rows)
    expected = _generates(6)  # seed 11, as the scene's generates
    for image, path in zip(expected, files, strict=True):
        with Image.open(path) as im:
            stored = np.asarray(im, dtype=np.float64) / 65535
        assert np.abs(stored - image).max() <= 0.5 / 65535 + 1e-7


def test_cli_audit_writes_the_folder_and_says_what_it_found(scene, tmp_path, capsys):
    from cxrgan_desktop.cli import main

    code = main(["audit", "--train", str(scene.train_dir), "--labels", str(scene.labels_csv),
                 "--synthetic", str(scene.synthetic_dir), "--held-out", str(scene.held_dir),
                 "--spaces", "pixels", "--device", "cpu", "--out", str(tmp_path / "cli")])
    said = capsys.readouterr().out
    assert code == 0
    report = read_flagged(tmp_path / "cli")
    assert f"flagged: {len(report.pixel_hashes)} of {N_GENERATES + len(KINDS) * 3}" in said
    code = main(["audit", "--train", str(scene.train_dir), "--synthetic",
                 str(scene.synthetic_dir), "--held-out", str(scene.held_dir), "--spaces",
                 "pixels,colour", "--out", str(tmp_path / "bad")])
    assert code == 2
    assert "unknown feature space" in capsys.readouterr().err


def test_the_reid_space_audits_with_a_model_trained_on_the_training_patients(scene, tmp_path):
    """A small re-identification model (32 px, 4 epochs) trained on the training folder: the
    audit runs both spaces, the exact copies are flagged in the reid space too, with their
    patient, and the summary records the model."""
    from cxrgan_desktop.engine.reid.training import ReidTrainConfig
    from cxrgan_desktop.engine.training.dataset import DatasetSpec
    from cxrgan_desktop.tasks.reid import train_reid

    model = tmp_path / "reid.safetensors"
    train_reid(DatasetSpec(scene.train_dir, scene.labels_csv), model,
               ReidTrainConfig(input_size=32, epochs=4))
    report = run_audit(AuditOptions(train_dir=scene.train_dir, out_dir=tmp_path / "r",
                                    synthetic=str(scene.synthetic_dir), held_out=scene.held_dir,
                                    labels_csv=scene.labels_csv, spaces=("pixels", "reid"),
                                    reid_model=str(model)))
    assert report.spaces == ("pixels", "reid")
    table = recall(report, scene, "reid")
    assert table["exact"] == (3, 3), table
    assert report.summary["spaces"]["reid"]["identity"]["weights_sha256"]
    assert report.summary["spaces"]["reid"]["resolution"] == 32


def test_the_inception_space_runs_on_given_weights_and_names_the_fix_without(
        scene, fid_weights_file, tmp_path):
    """On random weights in the FID layout (the published file is not reachable here): the
    space runs and its features are unit vectors of cosine similarity, so an exact copy is
    at 1; without weights the error says how to install them, before any work."""
    path, _ = fid_weights_file
    small, train, held = tmp_path / "few", tmp_path / "train", tmp_path / "held"
    for folder in (small, train, held):
        folder.mkdir()
    copies = [n for n, (kind, _, _) in scene.planted.items() if kind == "exact"][:2]
    for name in [*copies, *scene.generated[:4]]:
        shutil.copyfile(scene.synthetic_dir / name, small / name)
    sources = [scene.planted[n][2] for n in copies]
    others = sorted(p.name for p in scene.train_dir.glob("*.png"))[:6]
    for name in {*sources, *others}:  # ChestX-ray14 names: they give the patients
        shutil.copyfile(scene.train_dir / name, train / name)
    for source in sorted(scene.held_dir.glob("*.png"))[:5]:
        shutil.copyfile(source, held / source.name)
    report = run_audit(AuditOptions(train_dir=train, out_dir=tmp_path / "i",
                                    synthetic=str(small), held_out=held, spaces=("inception",),
                                    inception_weights=path, allow_unverified_weights=True))
    by_file = {r.synthetic_file: r.matches["inception"] for r in report.rows}
    for name in copies:
        assert by_file[name].similarity == pytest.approx(1.0, abs=1e-5)
        assert by_file[name].training_file == scene.planted[name][2]
    assert report.summary["spaces"]["inception"]["resolution"] == 256
    with pytest.raises(ValueError, match="cxrgan fid-weights"):
        run_audit(AuditOptions(train_dir=train, out_dir=tmp_path / "none",
                               synthetic=str(small), held_out=held, spaces=("inception",),
                               inception_weights=tmp_path / "missing.pth"))
    assert not (tmp_path / "none" / "audit.csv").exists()


def test_a_model_is_calibrated_only_with_the_hold_out_it_was_trained_with(scene, tmp_path,
                                                                          monkeypatch):
    import dataclasses

    import cxrgan_desktop.engine.checkpoints as checkpoints
    from cxrgan_desktop.engine.training.dataset import DatasetSpec, list_dataset
    from cxrgan_desktop.engine.training.holdout import choose_held_out, write_held_out

    listing = list_dataset(DatasetSpec(scene.train_dir, scene.labels_csv))
    trained_with, other = choose_held_out(listing, 0.2, seed=1), choose_held_out(listing, 0.2,
                                                                                  seed=2)
    real_load = checkpoints.load_generator

    def load_with_hold_out(path):
        model = real_load(path)
        return dataclasses.replace(model, provenance={**model.provenance,
                                                      "held_out": trained_with.summary()})

    monkeypatch.setattr(checkpoints, "load_generator", load_with_hold_out)
    options = dict(train_dir=scene.train_dir, synthetic="model:demo-phantom-64", n=4,
                   labels_csv=scene.labels_csv, spaces=("pixels",))
    write_held_out(tmp_path / "other_run", other)
    with pytest.raises(ValueError, match="not the hold-out this model was trained with"):
        run_audit(AuditOptions(out_dir=tmp_path / "a", held_out=tmp_path / "other_run",
                               **options))
    assert not (tmp_path / "a" / "audit.csv").exists()
    write_held_out(tmp_path / "its_run", trained_with)
    report = run_audit(AuditOptions(out_dir=tmp_path / "b", held_out=tmp_path / "its_run",
                                    **options))
    assert report.summary["synthetic"]["generated"]["trained_held_out"]["files_sha256"] == \
        report.summary["held_out"]["files_sha256"]


def test_an_unreadable_synthetic_file_is_reported_not_dropped(scene, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in scene.generated[:3]:
        shutil.copyfile(scene.synthetic_dir / name, folder / name)
    data = (scene.synthetic_dir / scene.generated[3]).read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    report = run_audit(AuditOptions(train_dir=scene.train_dir, out_dir=tmp_path / "a",
                                    synthetic=str(folder), held_out=scene.held_dir,
                                    labels_csv=scene.labels_csv, spaces=("pixels",)))
    assert sorted(r.synthetic_file for r in report.rows) == sorted(scene.generated[:3])
    skipped = report.summary["synthetic"]["skipped"]
    assert len(skipped) == 1 and "truncated.png" in skipped[0]
