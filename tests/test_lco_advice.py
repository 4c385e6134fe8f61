"""Issue 19, item 6: separate present/absent thresholds, advice on what a run's results say
about its settings, progress that only moves forward, and findings a classifier cannot read.

Uses the small generator and classifier trained on phantoms in the session (conftest)."""

import itertools
import json

import numpy as np
import pytest

from cxrgan_desktop.cli import main
from cxrgan_desktop.engine.checkpoints import save_generator
from cxrgan_desktop.engine.classifier.files import save_classifier
from cxrgan_desktop.engine.classifier.installed import (
    AUROC_FLOOR,
    card_from_provenance,
    classifier_card,
)
from cxrgan_desktop.engine.lco import LCORequest, LCOSettings, LCOTarget, MonotoneProgress, optimise
from cxrgan_desktop.engine.lco_advice import Outcome, advise, advise_results
from cxrgan_desktop.tasks.archive import MANIFEST_NAME, build_archive, repeated_target
from tests.conftest import LCO_LABELS

SPLIT = LCOTarget(present=("Cardiomegaly",), absent=("Effusion",), threshold=0.6,
                  absent_threshold=0.3)


def _requests(target, n, seed=11):
    return [LCORequest(k, target, seed) for k in range(n)]


# -- thresholds --------------------------------------------------------------------------------

@pytest.mark.parametrize(("cardiomegaly", "effusion", "passes"), [
    (0.61, 0.29, True),    # both on their side
    (0.60, 0.00, True),    # present: p >= 0.6 (inclusive)
    (0.59, 0.10, False),   # present below its threshold
    (0.95, 0.30, False),   # absent: p < 0.3 (exclusive)
    (0.95, 0.45, False),   # absent at 0.45 passed the old single threshold of 0.6; not now
    (0.45, 0.05, False),   # 0.45 would be "absent enough" but is not "present"
])
def test_present_and_absent_thresholds_are_separate(cardiomegaly, effusion, passes):
    assert SPLIT.passes({"Cardiomegaly": cardiomegaly, "Effusion": effusion}) is passes


def test_threshold_of_each_side_and_overrides():
    assert SPLIT.threshold_of("Cardiomegaly") == 0.6
    assert SPLIT.threshold_of("Effusion") == 0.3
    own = LCOTarget(("Cardiomegaly",), ("Effusion", "Pneumothorax"), 0.6,
                    (("Pneumothorax", 0.2),), absent_threshold=0.3)
    assert own.threshold_of("Pneumothorax") == 0.2 and own.threshold_of("Effusion") == 0.3
    assert LCOTarget(("Cardiomegaly",), ("Effusion",), 0.7).threshold_of("Effusion") == 0.7
    with pytest.raises(ValueError, match="absent findings must be between 0 and 1"):
        LCOTarget(("Cardiomegaly",), ("Effusion",), 0.6, absent_threshold=1.5)


def test_old_json_targets_load_and_new_ones_round_trip():
    old = {"present": ["Cardiomegaly"], "absent": ["Effusion"], "threshold": 0.7,
           "thresholds": {"Effusion": 0.4}}
    target = LCOTarget.from_json(old)
    assert target.absent_threshold is None and target.threshold_of("Effusion") == 0.4
    assert target.threshold_of("Cardiomegaly") == 0.7
    assert target.to_json() == old  # an old archive's stored plan still compares equal
    assert LCOTarget.from_json({"present": ["Effusion"]}).threshold == 0.5
    data = SPLIT.to_json()
    assert data["absent_threshold"] == 0.3
    assert LCOTarget.from_json(json.loads(json.dumps(data))) == SPLIT


# -- advice ------------------------------------------------------------------------------------

def test_advice_for_samples_accepted_at_step_0(phantom_generator, phantom_classifier):
    _, loaded = phantom_classifier
    easy = LCOTarget(present=("Cardiomegaly",), threshold=1e-6)
    results = optimise(phantom_generator, loaded.classifier, _requests(easy, 3),
                       LCOSettings(steps=5))
    advice = advise_results(results, LCO_LABELS, steps=5, restarts=2)
    assert advice.at_start == 3 and advice.accepted == 3 and advice.failed == 0
    (remark,) = advice.remarks
    assert remark.startswith("3 of 3 accepted samples passed at step 0")
    assert "already reads Cardiomegaly" in remark and "nothing was optimised" in remark
    assert "raise the present threshold (now 1e-06)" in remark
    highest = max(r.start_probabilities[0] for r in results)
    assert f"above {highest:.3f}" in remark


def test_advice_for_an_unreachable_target_names_the_best_reached(phantom_generator,
                                                                  phantom_classifier):
    _, loaded = phantom_classifier
    unreachable = LCOTarget(present=("Cardiomegaly",), threshold=1 - 1e-7)
    results = optimise(phantom_generator, loaded.classifier, _requests(unreachable, 2),
                       LCOSettings(steps=4, restarts=1, batch_size=2))
    assert not any(r.success for r in results)
    card = LCO_LABELS.index("Cardiomegaly")
    for r in results:  # the best over all evaluations is at least the final reading
        assert r.best_probabilities[card] >= r.probabilities[card]
        assert r.best_probabilities[card] >= r.start_probabilities[card]
    advice = advise_results(results, LCO_LABELS, steps=4, restarts=1)
    best = max(float(r.best_probabilities[card]) for r in results)
    (label_best,) = advice.best
    assert label_best.best == pytest.approx(best) and not label_best.reached
    (remark,) = advice.remarks
    assert remark.startswith("None of 2 samples converged in 2 attempts of 4 steps")
    assert f"Cardiomegaly {best:.3f} (needs ≥ 0.9999999)" in remark
    suggestion = label_best.suggestion()
    assert suggestion is not None and suggestion < best
    assert (f"lower the present threshold of Cardiomegaly below the best reached "
            f"({best:.3f}), e.g. to {suggestion:.2f}") in remark
    assert "more steps (now 4)" in remark and "more restarts (now 1)" in remark


def test_advice_by_hand_for_absent_labels_and_partial_success():
    target = LCOTarget(("Cardiomegaly",), ("Effusion",), 0.9, absent_threshold=0.1)
    failed = Outcome(target, False, 50, 3, {"Cardiomegaly": 0.2, "Effusion": 0.5},
                     {"Cardiomegaly": 0.93, "Effusion": 0.37},
                     {"Cardiomegaly": 0.8, "Effusion": 0.4})
    advice = advise([failed] * 3, steps=50, restarts=2)
    (remark,) = advice.remarks
    assert "Cardiomegaly 0.930 (needs ≥ 0.90; reached)" in remark
    assert "raise the absent threshold of Effusion above the best reached (0.370), e.g. to " \
           "0.40" in remark
    ok = Outcome(target, True, 12, 1, {}, {}, {})
    assert advise([failed, ok, ok], steps=50, restarts=2).remarks == ()  # most converged
    # each label reached on its own, never together
    apart = Outcome(target, False, 50, 3, {}, {"Cardiomegaly": 0.95, "Effusion": 0.05}, {})
    assert "not all together" in advise([apart]).text()
    absent_only = LCOTarget((), ("Effusion",), 0.5)
    at_start = Outcome(absent_only, True, 0, 1, {"Effusion": 0.2}, {}, {})
    text = advise([at_start]).text()
    assert "already reads no Effusion (p = 0.200)" in text
    assert "lower the absent threshold (now 0.50) below 0.200" in text


# -- progress ----------------------------------------------------------------------------------

def _is_non_decreasing(values):
    return all(b >= a for a, b in itertools.pairwise(values))


def test_progress_never_moves_back_through_restarts(phantom_generator, phantom_classifier):
    """Failed attempts restart (the old bar fell back then), successes leave the batch."""
    _, loaded = phantom_classifier
    seen = []
    mixed = [LCORequest(k, LCOTarget(("Cardiomegaly",), threshold=1 - 1e-7 if k % 2 else 1e-6),
                        5) for k in range(5)]
    optimise(phantom_generator, loaded.classifier, mixed,
             LCOSettings(steps=4, restarts=2, batch_size=2),
             progress=lambda f, m="": seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert _is_non_decreasing(fractions), fractions
    assert fractions[-1] == pytest.approx(1.0) and 0 < fractions[0] < 1
    assert seen[-1][1] == "5/5 samples settled, 3 accepted"


def test_archive_progress_is_monotone_with_eta(phantom_generator, phantom_classifier, tmp_path):
    _, loaded = phantom_classifier
    seen = []
    unreachable = LCOTarget(("Cardiomegaly",), threshold=1 - 1e-7)
    summary = build_archive(phantom_generator, loaded, repeated_target(unreachable, 3, seed=1),
                            tmp_path / "a", settings=LCOSettings(steps=3, restarts=1,
                                                                 batch_size=1),
                            progress=lambda f, m="": seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert _is_non_decreasing(fractions) and fractions[-1] == 1.0
    assert any(m.startswith("3/3 samples settled, 0 accepted") for _, m in seen)
    assert summary.advice is not None and "None of 3 samples converged" in summary.advice.text()
    manifest = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    assert manifest["advice"] == list(summary.advice.remarks)
    record = json.loads((tmp_path / "a" / "lco_00000.json").read_text())["lco"]
    assert record["best_probabilities"]["Cardiomegaly"] >= record["probabilities"]["Cardiomegaly"]


def test_monotone_progress_clamps_and_estimates_time_left():
    now = [0.0]
    seen = []
    progress = MonotoneProgress(lambda f, m="": seen.append((f, m)), clock=lambda: now[0])
    progress(0.005, "a")
    now[0] = 10.0
    progress(0.25, "b")
    progress(0.2, "c")  # a slice that reports less: shown as the best so far
    assert [f for f, _ in seen] == [0.005, 0.25, 0.25]
    assert seen[0][1] == "a" and seen[1][1] == "b, about 30 s left"
    now[0] = 100.0
    progress(0.5, "d")
    assert seen[-1][1] == "d, about 1 min 40 s left"


# -- findings a classifier cannot read -----------------------------------------------------------

PROVENANCE = {
    "train_positives": {"Cardiomegaly": 40, "Effusion": 0, "Pneumothorax": 25, "Hernia": 3},
    "validation": {"labels": [
        {"label": "Cardiomegaly", "auroc": 0.91, "positives": 10, "negatives": 40},
        {"label": "Effusion", "auroc": None, "positives": 0, "negatives": 50},
        {"label": "Pneumothorax", "auroc": 0.62, "positives": 6, "negatives": 44},
        {"label": "Hernia", "auroc": None, "positives": 0, "negatives": 50}]}}


def test_unreadable_findings_from_the_card():
    card = card_from_provenance(("Cardiomegaly", "Effusion", "Pneumothorax", "Hernia"),
                                PROVENANCE)
    reasons = card.unreadable()
    assert set(reasons) == {"Effusion", "Pneumothorax", "Hernia"}
    assert reasons["Effusion"] == "no positive images in its training data"
    assert reasons["Pneumothorax"] == f"validation AUROC 0.62 is below {AUROC_FLOOR:.2f}"
    assert "no positive images in its validation data" in reasons["Hernia"]
    assert card.per_label["Cardiomegaly"].train_positives == 40
    # a card that records nothing (an imported checkpoint) accuses nothing
    assert card_from_provenance(LCO_LABELS, {}).unreadable() == {}


def test_training_records_positives_and_the_card_reads_them(phantom_classifier):
    report, _ = phantom_classifier
    card = classifier_card(report.path)
    assert card.validated and card.labels == LCO_LABELS
    for name in LCO_LABELS:
        assert card.per_label[name].train_positives > 0
        assert card.per_label[name].val_auroc == pytest.approx(
            next(r.auroc for r in report.validation.labels if r.label == name))
    assert card.unreadable() == {}  # three common findings, well learnt


def test_cli_refuses_unreadable_findings_unless_allowed(phantom_generator, phantom_classifier,
                                                        tmp_path, capsys):
    _, loaded = phantom_classifier
    g = save_generator(tmp_path / "g.safetensors", phantom_generator.generator,
                       phantom_generator.adapter, "phantom-tiny")
    provenance = {**PROVENANCE, "train_positives": {"Cardiomegaly": 40, "Effusion": 0,
                                                    "Pneumothorax": 25}}
    c = save_classifier(tmp_path / "c.safetensors", loaded.classifier, "phantom-small",
                        provenance)
    common = ["lco", "--model", str(g), "--classifier", str(c), "--steps", "5", "--n", "2",
              "--batch-size", "2", "--restarts", "0", "--device", "cpu"]
    assert main([*common, "--labels", "Cardiomegaly", "--absent", "Effusion",
                 "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "cannot read Effusion" in err and "--allow-unreliable" in err
    assert not (tmp_path / "refused").exists()
    assert main([*common, "--labels", "Cardiomegaly", "--absent", "Effusion",
                 "--allow-unreliable", "--present-threshold", "0.000001",
                 "--absent-threshold", "0.999999", "--out", str(tmp_path / "ok")]) == 0
    captured = capsys.readouterr()
    assert "warning: classifier phantom-small cannot read Effusion" in captured.err
    assert "advice: 2 of 2 accepted samples passed at step 0" in captured.out
    plan = json.loads((tmp_path / "ok" / "archive.json").read_text())["plan"]
    assert plan["targets"][0]["threshold"] == 1e-6
    assert plan["targets"][0]["absent_threshold"] == 0.999999
    # the same threshold on both sides records as before the split
    assert main([*common, "--labels", "Cardiomegaly", "--threshold", "0.000001",
                 "--out", str(tmp_path / "same")]) == 0
    plan = json.loads((tmp_path / "same" / "archive.json").read_text())["plan"]
    assert "absent_threshold" not in plan["targets"][0]
    assert np.isclose(plan["targets"][0]["threshold"], 1e-6)


def test_equal_side_thresholds_record_as_one_whoever_builds_the_target():
    from cxrgan_desktop.engine.lco import LCOTarget

    both = LCOTarget(("Cardiomegaly",), ("Effusion",), 0.6, absent_threshold=0.6)
    one = LCOTarget(("Cardiomegaly",), ("Effusion",), 0.6)
    assert both.absent_threshold is None and both.to_json() == one.to_json()
    apart = LCOTarget(("Cardiomegaly",), ("Effusion",), 0.6, absent_threshold=0.3)
    assert apart.to_json()["absent_threshold"] == 0.3
