"""Latent class optimisation and the archive, on a small generator and classifier trained on
phantoms in the test session (tests/conftest.py)."""

import dataclasses
import json
import threading

import numpy as np
import pydicom
import pytest
import torch

from cxrgan_desktop.cli import main
from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.engine.checkpoints import save_generator
from cxrgan_desktop.engine.classifier.files import LoadedClassifier, save_classifier
from cxrgan_desktop.engine.classifier.model import ClassifierSpec, PathologyClassifier
from cxrgan_desktop.engine.lco import (
    LCORequest,
    LCOSettings,
    LCOTarget,
    chi_prior,
    judge,
    optimise,
    start_latent,
)
from cxrgan_desktop.engine.render import latents_for_seed
from cxrgan_desktop.imaging.png16 import read_png16
from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv
from cxrgan_desktop.labels.distribution import LabelDistribution
from cxrgan_desktop.tasks.archive import (
    CSV_NAME,
    MANIFEST_NAME,
    build_archive,
    distribution_plan,
    repeated_target,
)
from tests.conftest import LCO_LABELS

HARD = LCOTarget(present=("Cardiomegaly",), absent=("Effusion",), threshold=0.5,
                 thresholds=(("Cardiomegaly", 0.6),))


def _requests(target, n, seed=11):
    return [LCORequest(k, target, seed) for k in range(n)]


def _column(name):
    return LCO_LABELS.index(name)


def test_target_validation():
    with pytest.raises(ValueError, match="specifies no label"):
        LCOTarget()
    with pytest.raises(ValueError, match="both present and absent"):
        LCOTarget(("Effusion",), ("Effusion",))
    with pytest.raises(ValueError, match="between 0 and 1"):
        LCOTarget(("Effusion",), threshold=1.0)
    with pytest.raises(ValueError, match="no label.*Hernia"):
        LCOTarget(("Hernia",)).check_labels(LCO_LABELS)
    assert HARD.describe() == "Cardiomegaly, no Effusion"
    assert LCOTarget.from_json(HARD.to_json()) == HARD
    assert HARD.passes({"Cardiomegaly": 0.61, "Effusion": 0.49})
    assert not HARD.passes({"Cardiomegaly": 0.59, "Effusion": 0.1})
    assert not HARD.passes({"Cardiomegaly": 0.9, "Effusion": 0.5})


def test_prior_is_lowest_on_the_typical_shell():
    d = 64
    direction = torch.randn(1, d)
    direction /= direction.norm()
    radii = torch.linspace(4.0, 12.0, 801)
    values = torch.stack([chi_prior(direction * r)[0] for r in radii])
    assert float(radii[values.argmin()]) == pytest.approx((d - 1) ** 0.5, abs=0.02)


def test_first_attempt_starts_from_the_generate_latent():
    assert np.array_equal(start_latent(5, 3, 0, 32), latents_for_seed(5, 4, 32)[3])
    assert not np.array_equal(start_latent(5, 3, 1, 32), start_latent(5, 3, 0, 32))


def _unsatisfied_requests(generator, classifier, target, n, seed=11, pool=64):
    """The first ``n`` request indices whose starting image does not yet pass ``target``
    (by a margin), read by the classifier itself: the test then always has optimising to
    do, whatever the session's classifier learned."""
    z = torch.from_numpy(np.stack([start_latent(seed, k, 0, generator.generator.config
                                                .latent_size) for k in range(pool)]))
    with torch.no_grad():
        p = classifier.probabilities(generator.adapter.apply(generator.generator(z)))
    card = _column("Cardiomegaly")
    chosen = [k for k in range(pool) if float(p[k, card]) < 0.45][:n]
    assert len(chosen) == n, f"only {len(chosen)} of {pool} starts lack Cardiomegaly"
    return [LCORequest(k, target, seed) for k in chosen]


def test_lco_raises_requested_and_lowers_absent_probabilities(phantom_generator,
                                                              phantom_classifier):
    _, loaded = phantom_classifier
    requests = _unsatisfied_requests(phantom_generator, loaded.classifier, HARD, 6)
    results = optimise(phantom_generator, loaded.classifier, requests,
                       LCOSettings(steps=60, learning_rate=0.1, restarts=0, batch_size=3))
    start = np.stack([r.start_probabilities for r in results])
    final = np.stack([r.probabilities for r in results])
    card, eff = _column("Cardiomegaly"), _column("Effusion")
    assert (start[:, card] < 0.45).all()  # as chosen: LCO had to move every sample
    succeeded = [r for r in results if r.success]
    assert len(succeeded) >= 4, (start, final)
    for r in succeeded:  # early stop: stopped at the first step where the target passed
        assert HARD.passes(dict(zip(LCO_LABELS, r.probabilities.tolist(), strict=True)))
        assert r.probabilities[card] > r.start_probabilities[card] + 0.15
        assert 0 < r.steps < 60 and r.evaluations == r.steps + 1
        assert r.image_change > 0 and 0.8 < r.z_norm_ratio < 1.2
    assert final[:, eff].mean() < 0.5
    # the reported image is the generator's output for the reported z (to float rounding:
    # a batch of one takes other CPU kernels than the batch that made it)
    with torch.no_grad():
        z = torch.from_numpy(results[0].z[None])
        image = phantom_generator.adapter.apply(phantom_generator.generator(z))[0, 0]
    assert np.allclose(image.numpy(), results[0].image, atol=1e-4)


def test_already_satisfied_sample_stops_at_once(phantom_generator, phantom_classifier):
    _, loaded = phantom_classifier
    easy = LCOTarget(present=("Cardiomegaly",), threshold=1e-6)
    (result,) = optimise(phantom_generator, loaded.classifier, _requests(easy, 1),
                         LCOSettings(steps=50))
    assert result.success and result.steps == 0 and result.attempts == 1
    assert np.array_equal(result.z, result.z_start) and result.image_change == 0.0


def test_failed_samples_restart_from_new_seeds(phantom_generator, phantom_classifier):
    _, loaded = phantom_classifier
    impossible = LCOTarget(present=("Cardiomegaly",), threshold=1 - 1e-7)
    results = optimise(phantom_generator, loaded.classifier, _requests(impossible, 2),
                       LCOSettings(steps=3, restarts=2, batch_size=2))
    for k, r in enumerate(results):
        assert not r.success and r.attempts == 3 and r.steps == 3
        assert r.evaluations == 3 * (3 + 1)
        assert np.array_equal(r.z_start, start_latent(11, k, 2, 32))


def test_lco_is_deterministic(phantom_generator, phantom_classifier):
    _, loaded = phantom_classifier
    settings = LCOSettings(steps=20, restarts=0, batch_size=3)
    first = optimise(phantom_generator, loaded.classifier, _requests(HARD, 3), settings)
    second = optimise(phantom_generator, loaded.classifier, _requests(HARD, 3), settings)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.z, b.z) and a.steps == b.steps


def _hard_agrees(probability) -> bool:
    """HARD written out, by label name: Cardiomegaly at least 0.6, Effusion below 0.5."""
    return probability("Cardiomegaly") >= 0.6 and probability("Effusion") < 0.5


# An independent judge agrees with LCO on few images: the tiny generator and the steering
# classifier let LCO pass by changes the judge does not read as the findings (measured with
# the session's networks: 0 of 4 accepted images here, 0 of 6 in the archive, 0 of 3 by the
# CLI, and 0 of 24 on a larger draw; the judge reads Effusion at 0.58 to 0.82 on them, above
# the 0.5 that HARD asks it to be below). The bound leaves room for other CPUs' rounding and
# still fails when the steering classifier judges itself (1.0).
INDEPENDENT_AGREEMENT_AT_MOST = 0.5


def test_judge_reports_agreement(phantom_generator, phantom_classifier, judge_classifier):
    _, steering = phantom_classifier
    _, independent = judge_classifier
    assert independent.labels == LCO_LABELS[::-1]  # outputs in another order than LCO's
    results = optimise(phantom_generator, steering.classifier, _requests(HARD, 4),
                       LCOSettings(steps=60, learning_rate=0.1, restarts=0, batch_size=4))
    accepted = [r for r in results if r.success]
    assert accepted
    rate = judge(accepted, independent.classifier)
    # the reference: the judge network's logits through the logistic function, by hand
    images = torch.from_numpy(np.stack([r.image for r in accepted])[:, None])
    with torch.no_grad():
        logits = independent.classifier.eval()(images).double().numpy()
    probabilities = 1.0 / (1.0 + np.exp(-logits))
    column = {name: k for k, name in enumerate(independent.labels)}
    expected = [_hard_agrees(lambda name, row=row: row[column[name]])
                for row in probabilities]
    for result, row in zip(accepted, probabilities, strict=True):
        assert np.allclose(result.judge_probabilities, row, atol=1e-6)
    assert [r.judge_agrees for r in accepted] == expected
    assert rate == sum(expected) / len(expected)
    assert rate <= INDEPENDENT_AGREEMENT_AT_MOST, probabilities
    # by name, not by position: the reversed order swaps the Cardiomegaly and Pneumothorax
    # columns (Effusion, which decides HARD, stays in the middle), so ask of each image for
    # Cardiomegaly above the midpoint of the two reads; a swap flips every answer
    card, pneu = probabilities[:, column["Cardiomegaly"]], probabilities[:, column["Pneumothorax"]]
    between = [dataclasses.replace(r, request=dataclasses.replace(
        r.request, target=LCOTarget(present=("Cardiomegaly",), threshold=float(c + p) / 2)))
        for r, c, p in zip(accepted, card, pneu, strict=True)]
    assert np.abs(card - pneu).min() > 0.02  # clear of the midpoint, whatever the rounding
    judge(between, independent.classifier)
    assert [r.judge_agrees for r in between] == (card > pneu).tolist()


def test_cancel_stops_between_steps(phantom_generator, phantom_classifier):
    """Snapshots come every 5 steps and when a sample passes; an unreachable target means
    no sample passes, so the steps seen depend on nothing the classifier learned."""
    _, loaded = phantom_classifier
    cancel = threading.Event()
    seen = []
    unreachable = LCOTarget(present=("Cardiomegaly",), threshold=1 - 1e-7)

    def on_snapshot(snapshot):
        seen.append(snapshot)
        if len(seen) == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        optimise(phantom_generator, loaded.classifier, _requests(unreachable, 4),
                 LCOSettings(steps=100, snapshot_every=5), cancel=cancel,
                 on_snapshot=on_snapshot)
    assert [s.step for s in seen] == [0, 5] and seen[0].image.shape == (32, 32)


SMALL = LCOSettings(steps=40, learning_rate=0.1, restarts=1, batch_size=2)


def test_archive_writes_labelled_images_and_resumes_exactly(phantom_generator,
                                                           phantom_classifier, judge_classifier,
                                                           tmp_path):
    _, loaded = phantom_classifier
    _, independent = judge_classifier
    plan = repeated_target(HARD, 6, seed=4)
    out = tmp_path / "archive"
    summary = build_archive(phantom_generator, loaded, plan, out, settings=SMALL,
                            judge_classifier=independent)
    assert summary.done == 6 and summary.accepted >= 4
    assert summary.judge_agreement <= INDEPENDENT_AGREEMENT_AT_MOST
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] and manifest["accepted"] == summary.accepted
    assert manifest["controlled_labels"] == ["Cardiomegaly", "Effusion"]
    rows = read_data_entry_csv(out / CSV_NAME)
    assert len(rows) == summary.accepted
    assert all(r.findings == {"Cardiomegaly"} and r.gender == "O" for r in rows)
    records = {k: json.loads((out / f"lco_{k:05d}.json").read_text()) for k in range(6)}
    agreed = []
    for k, record in records.items():
        lco = record["lco"]
        assert lco["index"] == k and lco["seed"] == 4 and len(lco["z"]) == 32
        if lco["success"]:
            assert lco["probabilities"]["Cardiomegaly"] >= 0.6
            assert record["synthetic"] is True
            assert set(lco["judge_probabilities"]) == set(LCO_LABELS)
            agreed.append(lco["judge_agrees"])
            assert agreed[-1] is _hard_agrees(lco["judge_probabilities"].__getitem__)
            image = read_png16(out / lco["file"])
            assert image.shape == (32, 32)
            assert "Latent class optimisation" in record["description"]
    assert summary.judge_agreement == sum(agreed) / len(agreed) == manifest["judge_agreement"]

    # lose two finished items (one whole, one image only) and resume: they come back equal
    victim = next(k for k, r in records.items() if r["lco"]["success"])
    (out / f"lco_{victim:05d}.png").unlink()
    (out / "lco_00005.json").unlink()
    again = build_archive(phantom_generator, loaded, plan, out, settings=SMALL,
                          judge_classifier=independent)
    assert sorted(r.index for r in again.new_results) == sorted({victim, 5})
    for k in (victim, 5):
        redone = json.loads((out / f"lco_{k:05d}.json").read_text())["lco"]
        assert redone["z"] == records[k]["lco"]["z"]

    with pytest.raises(ValueError, match="other settings.*settings"):
        build_archive(phantom_generator, loaded, plan, out,
                      settings=LCOSettings(steps=41, restarts=1, batch_size=2))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        build_archive(phantom_generator, loaded, plan, tmp_path / "busy", settings=SMALL)


def test_cancelled_archive_is_consistent_and_continues(phantom_generator, phantom_classifier,
                                                       tmp_path):
    _, loaded = phantom_classifier
    plan = repeated_target(HARD, 6, seed=2)
    out = tmp_path / "a"
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        build_archive(phantom_generator, loaded, plan, out, settings=SMALL, cancel=cancel,
                      on_result=lambda result, path: cancel.set())
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert not manifest["complete"] and manifest["finished"] >= 1
    assert len(read_data_entry_csv(out / CSV_NAME)) == manifest["accepted"]
    summary = build_archive(phantom_generator, loaded, plan, out, settings=SMALL)
    assert summary.done == 6
    assert json.loads((out / MANIFEST_NAME).read_text())["complete"]


def test_distribution_plan_draws_complete_rows():
    distribution = LabelDistribution.independent({"Cardiomegaly": 0.5, "Effusion": 0.5})
    plan = distribution_plan(distribution, 50, seed=9, labels=LCO_LABELS, threshold=0.6)
    again = distribution_plan(distribution, 50, seed=9, labels=LCO_LABELS, threshold=0.6)
    assert plan == again and len(plan) == 50
    for target in plan.targets:
        assert set(target.present) | set(target.absent) == set(LCO_LABELS)
        assert "Pneumothorax" in target.absent and target.threshold == 0.6
    with_cardio = sum("Cardiomegaly" in t.present for t in plan.targets)
    assert 15 < with_cardio < 35
    assert len(plan.to_json()["targets"]) <= 4  # stored once per distinct target


def test_dicom_archive_carries_the_labels(phantom_generator, phantom_classifier, tmp_path):
    _, loaded = phantom_classifier
    easy = LCOTarget(present=("Cardiomegaly",), absent=("Pneumothorax",), threshold=1e-6,
                     thresholds=(("Pneumothorax", 1 - 1e-6),))
    build_archive(phantom_generator, loaded, repeated_target(easy, 2, seed=0),
                  tmp_path / "d", settings=SMALL, image_format="dicom")
    files = sorted((tmp_path / "d").glob("*.dcm"))
    assert len(files) == 2
    ds = pydicom.dcmread(files[0])
    assert ds.ConversionType == "SYN" and ds.PatientName == "SYNTHETIC^CXRGAN"
    assert "Cardiomegaly=yes" in ds.ImageComments and "Pneumothorax=no" in ds.ImageComments
    assert ds.SeriesInstanceUID == pydicom.dcmread(files[1]).SeriesInstanceUID


def test_cli_lco_and_archive(phantom_generator, phantom_classifier, judge_classifier,
                             lco_phantoms, tmp_path, capsys):
    _, loaded = phantom_classifier
    _, independent = judge_classifier
    g = save_generator(tmp_path / "g.safetensors", phantom_generator.generator,
                       phantom_generator.adapter, "phantom-tiny")
    c = save_classifier(tmp_path / "c.safetensors", loaded.classifier, "phantom-small")
    j = save_classifier(tmp_path / "j.safetensors", independent.classifier, "phantom-judge")
    common = ["--model", str(g), "--classifier", str(c), "--steps", "30", "--lr", "0.1",
              "--batch-size", "2", "--restarts", "0", "--device", "cpu"]
    assert main(["lco", *common, "--labels", "Cardiomegaly", "--absent", "Effusion",
                 "--thresholds", "Cardiomegaly=0.6", "--judge", str(j),
                 "--n", "3", "--out", str(tmp_path / "lco")]) == 0
    text = capsys.readouterr().out
    records = [json.loads(p.read_text())["lco"] for p in (tmp_path / "lco").glob("lco_*.json")]
    agreed = [_hard_agrees(r["judge_probabilities"].__getitem__) for r in records
              if r["success"]]
    assert len(records) == 3 and agreed
    assert f"{len(agreed)} of 3 accepted" in text
    assert sum(agreed) / len(agreed) <= INDEPENDENT_AGREEMENT_AT_MOST
    assert f"judge agrees on {100 * sum(agreed) / len(agreed):.1f} %" in text
    assert main(["lco", *common, "--labels", "Hernia", "--n", "1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "no label(s) Hernia" in capsys.readouterr().err
    csv = lco_phantoms / "Data_Entry_phantom.csv"
    assert main(["archive", *common, "--distribution", str(csv), "--n", "4",
                 "--out", str(tmp_path / "arch")]) == 0
    manifest = json.loads((tmp_path / "arch" / MANIFEST_NAME).read_text())
    assert manifest["finished"] == 4 and "Data_Entry_phantom.csv" in manifest["description"]


def test_lco_refuses_unknown_labels_before_any_work(phantom_generator):
    classifier = LoadedClassifier(PathologyClassifier(ClassifierSpec(
        "densenet-small", ("Effusion",), 32)), path=None, sha256="0" * 64, name="x")
    with pytest.raises(ValueError, match="no label"):
        build_archive(phantom_generator, classifier, repeated_target(HARD, 1, 0), "/nonexistent")
