"""Train on synthetic, test on real: the statistics against direct computations and
scikit-learn, the arms' composition, and the whole experiment on phantoms with a real LCO
archive of the phantom generator as the synthetic side (resume and cancel included)."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.engine.classifier.training import ClassifierTrainConfig
from cxrgan_desktop.engine.tstr.arms import plan_arms
from cxrgan_desktop.engine.tstr.config import TSTRConfig, load_config
from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv
from cxrgan_desktop.metrics import auroc_compare as ac
from cxrgan_desktop.tasks.tstr import ARM_FILE, run_tstr
from tests.conftest import LCO_LABELS

# -- statistics ---------------------------------------------------------------------------------


def _brute_force_delong(a, b, truth):
    """DeLong's paired test written from its definition: an m x n comparison table per model."""
    def components(s):
        pos, neg = s[truth], s[~truth]
        table = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return table.mean(axis=1), table.mean(axis=0)

    (a10, a01), (b10, b01) = components(a), components(b)
    m, n = truth.sum(), (~truth).sum()

    def cov(x, y):
        return np.sum((x - x.mean()) * (y - y.mean())) / (len(x) - 1)

    variance = (cov(a10, a10) + cov(b10, b10) - 2 * cov(a10, b10)) / m + \
        (cov(a01, a01) + cov(b01, b01) - 2 * cov(a01, b01)) / n
    difference = b10.mean() - a10.mean()
    return difference, math.sqrt(variance), 2 * norm.sf(abs(difference) / math.sqrt(variance))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_delong_matches_its_definition_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random(90) < 0.35
    a = np.round(truth * 0.8 + rng.normal(0, 1, 90), 1)  # rounded: many ties
    b = np.round(truth * 1.3 + 0.6 * a + rng.normal(0, 1, 90), 1)
    result = ac.delong_paired(a, b, truth)
    difference, se, p = _brute_force_delong(a, b, truth)
    assert result.auc_a == pytest.approx(roc_auc_score(truth, a), abs=1e-12)
    assert result.auc_b == pytest.approx(roc_auc_score(truth, b), abs=1e-12)
    assert result.difference == pytest.approx(difference, abs=1e-12)
    assert result.se == pytest.approx(se, rel=1e-10)
    assert result.p_value == pytest.approx(p, rel=1e-8)
    assert result.low < result.difference < result.high


def test_identical_models_do_not_differ_and_missing_classes_are_nan():
    rng = np.random.default_rng(3)
    truth, scores = rng.random(40) < 0.5, rng.random(40)
    same = ac.delong_paired(scores, scores, truth)
    assert same.difference == 0 and same.p_value == 1.0
    assert math.isnan(ac.delong_paired(scores, scores, np.zeros(40, bool)).auc_a)


def _percentile(values, q):
    """The q-th percentile from its definition (Hyndman and Fan's type 7, the usual bootstrap
    interval's): on the n sorted finite values, indexed from 0, take position
    h = (n - 1) q / 100 and interpolate linearly between the values either side of it."""
    ordered = sorted(float(v) for v in values if math.isfinite(v))
    h = (len(ordered) - 1) * q / 100
    below = math.floor(h)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (h - below) * (ordered[above] - ordered[below])


def test_percentile_interval_follows_the_definition():
    # worked by hand: sorted 1..5, positions 4 x 0.025 = 0.1 and 4 x 0.975 = 3.9
    values = np.array([4.0, 1.0, 3.0, np.nan, 2.0, 5.0, np.inf])  # undefined resamples dropped
    assert ac.percentile_interval(values) == pytest.approx((1.1, 4.9), abs=1e-12)
    assert ac.percentile_interval(values, level=0.5) == pytest.approx((2.0, 4.0), abs=1e-12)
    rng = np.random.default_rng(8)
    for n, level in ((1000, 0.95), (37, 0.9), (200, 0.8)):  # h falls between values
        draws = rng.standard_t(3, size=n)
        tail = 100 * (1 - level) / 2
        assert ac.percentile_interval(draws, level) == pytest.approx(
            (_percentile(draws, tail), _percentile(draws, 100 - tail)), rel=1e-12)
    assert all(math.isnan(x) for x in ac.percentile_interval(np.full(5, np.nan)))


def test_patient_bootstrap_draws_whole_patients_and_scores_each_resample():
    rng = np.random.default_rng(4)
    patients = np.repeat(np.arange(15), 3)  # three images per patient
    truth = rng.random((45, 2)) < 0.4
    probs = rng.random((45, 2))
    resamples = ac.resample_indices(45, 50, seed=7, groups=patients)
    for ix in resamples:
        counts = np.bincount(patients[ix], minlength=15)
        assert np.all(counts % 3 == 0)  # a patient comes with all three images or none
    assert all(np.array_equal(x, y) for x, y in
               zip(resamples, ac.resample_indices(45, 50, seed=7, groups=patients),
                   strict=True))
    boot = ac.bootstrap_aurocs(probs, truth, resamples)
    ix = resamples[5]
    assert boot[5, 1] == pytest.approx(roc_auc_score(truth[ix, 1], probs[ix, 1]))
    assert ac.macro(boot)[5] == pytest.approx(boot[5].mean())
    values = rng.normal(size=1000)
    assert ac.percentile_interval(values) == pytest.approx(
        (_percentile(values, 2.5), _percentile(values, 97.5)), rel=1e-12)
    assert ac.bootstrap_p_value(np.full(99, 0.1)) == pytest.approx(2 / 100)
    assert ac.bootstrap_p_value(np.concatenate([-np.ones(50), np.ones(50)])) == 1.0


# -- arms ---------------------------------------------------------------------------------------


class _Set:
    def __init__(self, patients):
        self.patient_ids = np.asarray(patients)

    def __len__(self):
        return len(self.patient_ids)


def test_arms_keep_test_patients_out_and_nest_the_scarce_subsets(tmp_path):
    from cxrgan_desktop.engine.classifier.data import patient_split

    real = _Set(np.repeat(np.arange(50), 2))
    synthetic = _Set(np.arange(70))
    config = _config(tmp_path, tmp_path, arms=("real", "synthetic", "mixed", "scarce"),
                     mix_ratio=0.5, scarce_fractions=(0.2, 0.5))
    train, test = patient_split(real.patient_ids, 0.2, 0)
    arms = {arm.name: arm for arm in plan_arms(config, real, synthetic, train)}
    assert list(arms) == ["real", "synthetic", "mixed", "real-20%", "real-20%+synthetic",
                          "real-50%", "real-50%+synthetic"]
    test_patients = set(real.patient_ids[test])
    for arm in arms.values():
        assert not test_patients & set(real.patient_ids[arm.real])
    assert len(arms["mixed"].synthetic) == round(0.5 * len(train))
    assert np.array_equal(arms["real-20%+synthetic"].synthetic, arms["mixed"].synthetic)
    assert set(arms["real-20%"].real) < set(arms["real-50%"].real) < set(train)
    assert len(set(real.patient_ids[arms["real-20%"].real])) == 8  # 20 % of 40 patients
    assert len(arms["synthetic"].synthetic) == 70 and len(arms["synthetic"].real) == 0


def test_config_files_are_checked(tmp_path):
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / "Data_Entry_lco.csv").write_text("")
    good = tmp_path / "experiment.toml"
    good.write_text('real_images = "real"\nreal_labels = "real/labels.csv"\n'
                    'synthetic_images = "synthetic"\nlabels = ["Effusion"]\n'
                    '[classifier]\nepochs = 2\narchitecture = "densenet-small"\n')
    config = load_config(good)
    assert config.synthetic_labels == tmp_path / "synthetic" / "Data_Entry_lco.csv"
    assert config.classifier.epochs == 2 and config.classifier.labels == ("Effusion",)
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("epochs = 2", "epoch = 2"))
    with pytest.raises(ValueError, match="unknown setting.*epoch"):
        load_config(bad)
    with pytest.raises(ValueError, match="baseline"):
        dataclasses.replace(config, arms=("synthetic",))


# -- the whole experiment on phantoms -----------------------------------------------------------


def _config(real_dir, synthetic_dir, **changes):
    labels = changes.pop("labels", LCO_LABELS)
    recipe = ClassifierTrainConfig(architecture="densenet-small", input_size=32, labels=labels,
                                   epochs=2, batch_size=16)
    return TSTRConfig(real_images=real_dir, real_labels=real_dir / "labels.csv",
                      synthetic_images=synthetic_dir,
                      synthetic_labels=synthetic_dir / "labels.csv", labels=labels,
                      classifier=recipe, **{"bootstrap": 100, **changes})


def test_the_experiment_runs_end_to_end_and_resumes(experiment_data, tmp_path):
    real_dir, real_labels, archive, archive_labels = experiment_data
    config = dataclasses.replace(
        _config(real_dir, archive, arms=("real", "synthetic", "mixed", "scarce"),
                scarce_fractions=(0.5,)), real_labels=real_labels,
        synthetic_labels=archive_labels)
    messages: list[str] = []
    results = run_tstr(config, tmp_path / "out", progress=lambda f, m: messages.append(m))
    split = results["split"]
    assert split["shared_patients"] == 0
    assert split["test_images"] + split["train_images"] == 240
    assert split["train_patients"] + split["test_patients"] == 120
    arms = results["arms"]
    assert list(arms) == ["real", "synthetic", "mixed", "real-50%", "real-50%+synthetic"]
    accepted = len(read_data_entry_csv(archive_labels))
    assert arms["synthetic"]["composition"] == {"real_images": 0,
                                                "synthetic_images": accepted,
                                                "real_fraction": 1.0}
    for name, arm in arms.items():
        stats = arm["statistics"]
        assert 0 <= stats["macro_low"] <= stats["macro_auroc"] <= stats["macro_high"] <= 1
        assert [e["label"] for e in stats["labels"]] == list(LCO_LABELS)
        assert ("macro_vs_real" in stats) == (name != "real")
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["arms"]["mixed"]["statistics"] == arms["mixed"]["statistics"]
    text = (tmp_path / "out" / "results.txt").read_text()
    assert "real-50%+synthetic" in text and "paired DeLong" in text

    # a rerun trains nothing; a different bootstrap count only recomputes the statistics
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "arms").rglob(ARM_FILE)}
    messages.clear()
    again = run_tstr(dataclasses.replace(config, bootstrap=150), tmp_path / "out",
                     progress=lambda f, m: messages.append(m))
    assert sum("already done" in m for m in messages) == 5
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert again["arms"]["real"]["statistics"]["macro_auroc"] == \
        arms["real"]["statistics"]["macro_auroc"]


def test_a_cancelled_experiment_continues_at_its_arm(experiment_data, tmp_path):
    real_dir, real_labels, archive, archive_labels = experiment_data
    config = dataclasses.replace(_config(real_dir, archive, arms=("real", "synthetic")),
                                 real_labels=real_labels, synthetic_labels=archive_labels)
    cancel = threading.Event()

    def progress(fraction, message):
        if "epoch" in message and len(list((tmp_path / "out").rglob(ARM_FILE))) == 1:
            cancel.set()  # stop inside the second arm's training

    with pytest.raises(Cancelled):
        run_tstr(config, tmp_path / "out", progress=progress, cancel=cancel)
    assert [p.parent.name for p in (tmp_path / "out").rglob(ARM_FILE)] == ["real"]
    messages: list[str] = []
    results = run_tstr(config, tmp_path / "out", progress=lambda f, m: messages.append(m))
    assert any("real: already done" in m for m in messages)
    assert set(results["arms"]) == {"real", "synthetic"}


# -- results for the window and the figures -----------------------------------------------------


def _arm(kind, real, synthetic, fraction, macro, labels=(0.7, 0.8)):
    stats = {"macro_auroc": macro, "macro_low": macro - 0.1, "macro_high": macro + 0.05,
             "labels": [{"label": name, "auroc": value,
                         "low": None if value is None else value - 0.1,
                         "high": None if value is None else value + 0.1, "positives": 5}
                        for name, value in zip(("Effusion", "Mass"), labels, strict=True)]}
    if kind != "real":
        stats["macro_vs_real"] = {"difference": macro - 0.75, "low": -0.2, "high": 0.1,
                                  "p_bootstrap": 0.3}
    return {"kind": kind, "statistics": stats,
            "composition": {"real_images": real, "synthetic_images": synthetic,
                            "real_fraction": fraction}}


def _results():
    return {"arms": {"real": _arm("real", 100, 0, 1.0, 0.75),
                     "synthetic": _arm("synthetic", 0, 80, 1.0, 0.6),
                     "mixed": _arm("mixed", 100, 80, 1.0, 0.77),
                     "real-20%": _arm("scarce", 20, 0, 0.2, 0.62, (None, 0.62)),
                     "real-20%+synthetic": _arm("scarce", 20, 80, 0.2, 0.7)},
            "split": {"test_images": 30, "test_patients": 20}, "bootstrap": 100}


def test_the_figures_take_the_main_arms_and_the_learning_curve():
    from cxrgan_desktop.engine.tstr.results import (
        label_intervals,
        learning_curve,
        main_arms,
        summary_rows,
    )

    results = _results()
    assert main_arms(results) == ["real", "synthetic", "mixed"]
    assert label_intervals(results, "mixed")[-1] == pytest.approx((0.77, 0.67, 0.82))
    curve = learning_curve(results)
    assert [f for f, _ in curve["real only"]] == [0.2, 1.0]
    assert [p[0] for _, p in curve["real + synthetic"]] == [0.7, 0.77]
    del results["arms"]["real-20%"], results["arms"]["real-20%+synthetic"]
    assert learning_curve(results) == {}
    header, rows = summary_rows(_results())
    assert header[-2:] == ["Effusion", "Mass"]
    assert rows[0][5] == "baseline" and rows[1][5] == "-0.150"
    assert rows[3][-2] == "–"  # an undefined AUROC is shown, not hidden


def test_an_experiment_file_round_trips(tmp_path):
    from cxrgan_desktop.engine.tstr.config import shared_findings, write_config

    for side, rows in (("real", "a.png,Effusion|Mass\nb.png,No Finding\n"),
                       ("synthetic", "c.png,Effusion\nd.png,Nodule\n")):
        (tmp_path / side).mkdir()
        (tmp_path / side / "Data_Entry.csv").write_text(
            "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
            "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n"
            + "".join(f"{line},0,{k},40,M,PA,8,8,0.1,0.1\n"
                      for k, line in enumerate(rows.strip().split("\n"))))
    assert shared_findings(tmp_path / "real" / "Data_Entry.csv",
                           tmp_path / "synthetic" / "Data_Entry.csv") == ("Effusion",)
    config = _config(tmp_path / "real", tmp_path / "synthetic", labels=("Effusion",),
                     arms=("real", "scarce"), scarce_fractions=(0.3,), seed=4)
    config = dataclasses.replace(config, real_labels=tmp_path / "real" / "Data_Entry.csv",
                                 synthetic_labels=tmp_path / "synthetic" / "Data_Entry.csv")
    for name in ("experiment.toml", "experiment.json"):
        written = write_config(config, tmp_path / name)
        assert load_config(written) == config
    assert 'real_images = "real"' in (tmp_path / "experiment.toml").read_text()


def test_cxrgan_tstr_runs_resumes_and_draws(experiment_data, tmp_path, capsys):
    import tomllib

    from cxrgan_desktop.cli import main

    real_dir, real_labels, archive, _ = experiment_data
    assert main(["tstr", "--example"]) == 0
    example = tomllib.loads(capsys.readouterr().out)
    assert {"real_images", "synthetic_images", "arms", "classifier"} <= set(example)
    experiment = tmp_path / "phantoms.toml"
    experiment.write_text(
        f'real_images = "{real_dir}"\nreal_labels = "{real_labels}"\n'
        f'synthetic_images = "{archive}"\nlabels = {list(LCO_LABELS)!r}\n'
        'arms = ["real", "synthetic", "scarce"]\nscarce_fractions = [0.5]\nbootstrap = 100\n'
        '[classifier]\narchitecture = "densenet-small"\ninput_size = 32\nepochs = 1\n')
    assert main(["tstr", str(experiment), "--device", "cpu"]) == 0
    out = tmp_path / "phantoms-results"
    printed = capsys.readouterr().out
    assert "real-50%+synthetic" in printed and "wrote" in printed
    for name in ("results.json", "results.txt", "auroc.png", "auroc.pdf",
                 "learning_curve.png", "learning_curve.pdf"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "auroc.pdf").read_bytes().startswith(b"%PDF")
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob(ARM_FILE)}
    assert len(stamps) == 4
    assert main(["tstr", str(experiment), "--device", "cpu", "--json", "--no-plots"]) == 0
    assert json.loads(capsys.readouterr().out)["arms"].keys() == {
        "real", "synthetic", "real-50%", "real-50%+synthetic"}
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # nothing trained again
    assert main(["tstr", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["tstr"]) == 2


def test_the_whole_plan_is_checked_before_any_arm_trains(experiment_data, tmp_path):
    """A scarce arm too small for one batch is named before the real arm spends its time;
    nothing is trained or written."""
    real_dir, real_labels, archive, archive_labels = experiment_data
    config = dataclasses.replace(
        _config(real_dir, archive, arms=("real", "scarce"), scarce_fractions=(0.05,)),
        real_labels=real_labels, synthetic_labels=archive_labels)
    config = dataclasses.replace(config, classifier=dataclasses.replace(
        config.classifier, batch_size=64))
    with pytest.raises(ValueError, match=r"nothing was trained:\n.*arm real-5%: \d+ training "
                       r"images after the validation split .* fewer than the batch size 64"):
        run_tstr(config, tmp_path / "out")
    assert not (tmp_path / "out" / "arms").exists()


def test_a_mixed_arm_short_of_synthetic_images_is_reported():
    from cxrgan_desktop.engine.tstr.arms import Arm, check_arms

    config = _config(Path("r"), Path("s"), arms=("real", "mixed"))
    arms = [Arm("real", "real", np.arange(960), np.array([], np.int64)),
            Arm("mixed", "mixed", np.arange(960), np.arange(19))]
    problems, warnings = check_arms(config, arms, lambda arm: np.arange(
        len(arm.real) + len(arm.synthetic)), lambda ids: (ids[:-10], ids[-10:]))
    assert not problems
    assert len(warnings) == 1 and "arm mixed: 19 synthetic images beside 960 real ones, " \
        "where mix_ratio 1 asks for 960" in warnings[0]
