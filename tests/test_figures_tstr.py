"""The TSTR figures against the results table they draw: bar heights and intervals per arm
and label, an undefined AUROC left out, the learning curve's points, the synthetic-only
level, and which files an experiment gets."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.container import BarContainer, ErrorbarContainer
from PIL import Image

from cxrgan_desktop.figures.tstr import (
    PLOT_FILES,
    auroc_figure,
    learning_curve_figure,
    tstr_figures,
    write_tstr_figures,
)
from tests.figure_data import LABELS, tstr_results

MAIN_ARMS = ("real", "synthetic", "mixed")


def _expected(results, arm):
    """(estimate, low, high) per label then macro, read straight from the table."""
    stats = results["arms"][arm]["statistics"]
    rows = [(e["auroc"], e["low"], e["high"]) for e in stats["labels"]]
    return [*rows, (stats["macro_auroc"], stats["macro_low"], stats["macro_high"])]


def test_auroc_bars_rise_from_chance_to_each_arms_estimate():
    results = tstr_results()
    axes = auroc_figure(results).axes[0]
    bars = [c for c in axes.containers if isinstance(c, BarContainer)]
    errors = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    assert [b.get_label() for b in bars] == list(MAIN_ARMS)  # no scarce arm among the bars
    assert [t.get_text() for t in axes.get_xticklabels()] == [*LABELS, "macro"]
    for index, (arm, container, error) in enumerate(zip(MAIN_ARMS, bars, errors, strict=True)):
        expected = _expected(results, arm)
        defined = [(group, e) for group, e in enumerate(expected) if e[0] is not None]
        assert len(container.patches) == len(defined)  # synthetic's Nodule: no bar
        for patch, (group, (estimate, _, _)) in zip(container.patches, defined, strict=True):
            centre = patch.get_x() + patch.get_width() / 2
            assert centre == pytest.approx(group - 0.4 + 0.8 / 3 * (index + 0.5))
            assert patch.get_y() == pytest.approx(0.5)
            assert patch.get_y() + patch.get_height() == pytest.approx(estimate)
        spans = sorted((s[0][0], s[0][1], s[1][1]) for s in error.lines[2][0].get_segments())
        wanted = sorted((group - 0.4 + 0.8 / 3 * (index + 0.5), low, high)
                        for group, (_, low, high) in defined)
        np.testing.assert_allclose(spans, wanted, atol=1e-12)
    faces = {tuple(b.patches[0].get_facecolor()) for b in bars}
    assert len(faces) == 3
    chance = [line for line in axes.get_lines() if np.allclose(line.get_ydata(), 0.5)]
    assert len(chance) == 1
    low, high = axes.get_ylim()
    lowest = min(e[1] for arm in MAIN_ARMS for e in _expected(results, arm) if e[1] is not None)
    assert low < lowest < 0.5 < high and high == pytest.approx(1.0, abs=0.03)
    assert [t.get_text() for t in axes.get_legend().get_texts()] == list(MAIN_ARMS)


def test_many_findings_slant_their_names():
    results = tstr_results()
    for arm in results["arms"].values():
        arm["statistics"]["labels"] = [dict(arm["statistics"]["labels"][0], label=f"F{i}")
                                       for i in range(14)]
    axes = auroc_figure(results).axes[0]
    ticks = axes.get_xticklabels()
    assert len(ticks) == 15 and all(t.get_rotation() == 30 for t in ticks)
    assert tstr_figures(tstr_results()).keys() == {"auroc", "learning_curve"}
    axes = auroc_figure(tstr_results()).axes[0]
    assert all(t.get_rotation() == 0 for t in axes.get_xticklabels())


def test_the_learning_curve_joins_the_scarce_arms_to_the_full_ones():
    results = tstr_results()
    axes = learning_curve_figure(results).axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    macro = {name: arm["statistics"]["macro_auroc"] for name, arm in results["arms"].items()}
    real_only = [(0.2, macro["real-20%"]), (0.5, macro["real-50%"]), (1.0, macro["real"])]
    mixed = [(0.2, macro["real-20%+synthetic"]), (0.5, macro["real-50%+synthetic"]),
             (1.0, macro["mixed"])]
    for name, points, nudge in (("real only", real_only, -0.006),
                                ("real + synthetic", mixed, 0.006)):
        expected = [(fraction + nudge, value) for fraction, value in points]
        np.testing.assert_allclose(lines[name].get_xydata(), expected, atol=1e-12)
    level = lines["synthetic only"]
    assert level.get_linestyle() == "--"
    np.testing.assert_allclose(level.get_xydata(), [[0, macro["synthetic"]],
                                                    [1, macro["synthetic"]]])
    assert to_rgb(lines["real only"].get_color()) == (0.0, 0.0, 0.0)
    spans = sorted(tuple(np.round(s[:, 1], 9)) for c in axes.containers
                   if isinstance(c, ErrorbarContainer) for s in c.lines[2][0].get_segments())
    wanted = sorted((round(results["arms"][a]["statistics"]["macro_low"], 9),
                     round(results["arms"][a]["statistics"]["macro_high"], 9))
                    for a in ("real", "mixed", "real-20%", "real-50%", "real-20%+synthetic",
                              "real-50%+synthetic"))
    assert spans == wanted
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "real only", "real + synthetic", "synthetic only"]


def test_an_experiment_without_scarce_arms_has_no_learning_curve(tmp_path):
    written = write_tstr_figures(tstr_results(scarce=False), tmp_path)
    assert [p.name for p in written] == ["auroc.png", "auroc.pdf"]
    written = write_tstr_figures(tstr_results(), tmp_path)
    assert [p.name for p in written] == list(PLOT_FILES)
    for name in ("auroc.png", "learning_curve.png"):
        with Image.open(tmp_path / name) as image:
            image.load()
            assert image.size == (1200, 900)
    for name in ("auroc.pdf", "learning_curve.pdf"):
        assert (tmp_path / name).read_bytes().startswith(b"%PDF-")
