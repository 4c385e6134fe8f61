"""The reader-study figures against the data: ROC vertices and AUCs from scikit-learn,
accuracies and exact intervals from scipy; the files are a 1200 x 900 PNG and a one-page
vector PDF, written atomically."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer
from PIL import Image
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score, roc_curve

from cxrgan_desktop.figures import paper
from cxrgan_desktop.figures.study import (
    PLOT_FILES,
    accuracy_figure,
    roc_figure,
    write_study_figures,
)
from cxrgan_desktop.study.analysis import POOLED, analyse
from cxrgan_desktop.study.results_table import ResultRow
from tests.figure_data import READERS, study_rows


def _by_reader(rows):
    """Readers in name order, as the analysis lists them."""
    return {reader: [r for r in rows if r.reader == reader] for reader in sorted(READERS)}


def test_roc_curves_are_each_readers_operating_points():
    rows = study_rows()
    axes = roc_figure(rows, analyse(rows)).axes[0]
    named = [line for line in axes.get_lines() if not line.get_label().startswith("_")]
    assert len(named) == len(READERS)
    for line, (reader, group) in zip(named, _by_reader(rows).items(), strict=True):
        truth = [r.truth == "synthetic" for r in group]
        ratings = [r.rating for r in group]
        fpr, tpr, _ = roc_curve(truth, ratings, drop_intermediate=False)
        np.testing.assert_allclose(line.get_xydata(), np.column_stack([fpr, tpr]), atol=1e-12)
        assert line.get_label() == f"{reader} (AUC {roc_auc_score(truth, ratings):.2f})"
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend == [line.get_label() for line in named]  # the chance line is not listed
    chance = [line for line in axes.get_lines() if line.get_label() == "_chance"]
    assert len(chance) == 1 and chance[0].get_linestyle() == "--"
    np.testing.assert_array_equal(chance[0].get_xydata(), [[0, 0], [1, 1]])
    colours = {line.get_color() for line in named}
    assert len(colours) == len(READERS)
    assert axes.get_xlabel().startswith("False positive rate")
    assert axes.get_ylabel().startswith("True positive rate")


def test_a_reader_who_saw_one_class_is_named_without_an_auc():
    rows = study_rows() + [ResultRow("only-real", f"x{i}", "real", 1 + i % 6, "real")
                           for i in range(8)]
    axes = roc_figure(rows, analyse(rows)).axes[0]
    labels = [t.get_text() for t in axes.get_legend().get_texts()]
    assert "only-real" in labels and sum("AUC" in label for label in labels) == len(READERS)


def test_accuracy_points_and_their_exact_intervals():
    rows = study_rows()
    axes = accuracy_figure(analyse(rows)).axes[0]
    groups = [*_by_reader(rows).values(), rows]
    expected, intervals = [], []
    for group in groups:
        correct = sum(r.answer == r.truth for r in group)
        expected.append(correct / len(group))
        ci = binomtest(correct, len(group)).proportion_ci(0.95, method="exact")
        intervals.append((ci.low, ci.high))
    (points,) = [c for c in axes.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(points.get_offsets(),
                               np.column_stack([np.arange(len(groups)), expected]), atol=1e-12)
    faces = points.get_facecolors()
    np.testing.assert_allclose(faces[-1][:3], 0)  # pooled in black
    assert len({tuple(f) for f in faces}) == len(groups)
    (bars,) = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    segments = bars.lines[2][0].get_segments()
    np.testing.assert_allclose([[s[0][1], s[1][1]] for s in segments], intervals, rtol=1e-9)
    ticks = [t.get_text() for t in axes.get_xticklabels()]
    assert ticks == [*(name[:14] for name in sorted(READERS)), "pooled"]
    assert ticks[0] == "a-reader-with-"  # long names are cut
    guessing = [line for line in axes.get_lines() if np.allclose(line.get_ydata(), 0.5)]
    assert len(guessing) == 1
    assert axes.get_ylim()[0] < 0 and axes.get_ylim()[1] > 1
    assert POOLED not in ticks


def test_the_files_are_a_png_of_the_export_size_and_a_one_page_pdf(tmp_path):
    rows = study_rows()
    written = write_study_figures(rows, analyse(rows), tmp_path)
    assert [p.name for p in written] == list(PLOT_FILES)
    for name in ("roc.png", "accuracy.png"):
        with Image.open(tmp_path / name) as image:
            image.load()
            assert image.format == "PNG" and image.size == (1200, 900)
            pixels = np.asarray(image.convert("RGB"))
        assert (pixels == 255).all(axis=2).mean() > 0.5  # white paper ...
        assert (pixels.max(axis=2) < 60).sum() > 2000  # ... with black text and axes
    red = np.asarray(Image.open(tmp_path / "roc.png").convert("RGB")).astype(int)
    first = np.array(paper.series_colour(0, 3)) * 255
    assert (np.abs(red - first).max(axis=2) < 8).sum() > 200  # the first reader's curve
    for name in ("roc.pdf", "accuracy.pdf"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"%PDF-") and b"%%EOF" in data[-32:]
        assert len(re.findall(rb"/Type\s*/Page\b", data)) == 1
        assert re.search(rb"/MediaBox\s*\[\s*0 0 576 432\s*\]", data)
        assert b"/FontFile2" in data  # TrueType fonts embedded, not Type 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_the_same_data_give_the_same_bytes(tmp_path):
    rows = study_rows()
    write_study_figures(rows, analyse(rows), tmp_path / "a")
    write_study_figures(rows, analyse(rows), tmp_path / "b")
    for name in PLOT_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    rows = study_rows()
    figure = roc_figure(rows, analyse(rows))
    target = paper.save_figure(figure, tmp_path / "roc.png")
    before = target.read_bytes()

    def broken(self, handle, **kwargs):
        handle.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(type(figure), "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        paper.save_figure(figure, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["roc.png"]
    with pytest.raises(ValueError, match=r"\.png or \.pdf"):
        paper.save_figure(figure, tmp_path / "roc.svg")
