"""The command line draws its figures with Qt absent: ``cxrgan study analyse --plots`` and
``cxrgan tstr`` run in a Python where importing PySide6, shiboken6 or pyqtgraph fails (a
meta-path blocker installed before anything else is imported), and with MPLBACKEND naming
the Qt backend, so that consulting matplotlib's backend setting would fail too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cxrgan_desktop.study.results_table import write_results
from tests.figure_data import LABELS, study_rows, tstr_results

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = """
import importlib.abc, json, sys
BLOCKED = {"PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6", "PySide2"}
class NoQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None
sys.meta_path.insert(0, NoQt())
"""
RUN_CLI = """
from cxrgan_desktop.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules
                if m.partition(".")[0] in BLOCKED or m.startswith("cxrgan_desktop.gui"))
print("\\nRESULT " + json.dumps({"code": code, "loaded": loaded}))
"""


def _run(code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "QtAgg", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def _cli(*argv: str, prelude: str = "") -> dict:
    done = _run(BLOCKER + prelude + RUN_CLI, *argv)
    result = re.search(r"^RESULT (.*)$", done.stdout, re.MULTILINE)
    assert result, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return json.loads(result.group(1))


def _check_png(path: Path) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.size == (1200, 900), path.name
        pixels = np.asarray(image.convert("L"))
    assert (pixels == 255).mean() > 0.5 and (pixels < 60).sum() > 2000, path.name


def _check_pdf(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-32:], path.name
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 1, path.name
    assert len(data) > 5_000, path.name


def test_the_blocker_stops_qt_and_the_gui_figures():
    """Without this the other tests here could pass with Qt quietly loaded."""
    for statement in ("import PySide6", "import pyqtgraph",
                      "import cxrgan_desktop.gui.reports.figures"):
        done = _run(BLOCKER + statement)
        assert done.returncode != 0 and "(blocked)" in done.stderr, statement


def test_study_analyse_draws_its_plots_without_qt(tmp_path):
    results = tmp_path / "results.csv"
    write_results(results, study_rows())
    out = tmp_path / "analysis"
    outcome = _cli("study", "analyse", str(results), "--out", str(out), "--plots")
    assert outcome == {"code": 0, "loaded": []}
    for stem in ("roc", "accuracy"):
        _check_png(out / f"{stem}.png")
        _check_pdf(out / f"{stem}.pdf")


def test_tstr_draws_its_plots_without_qt(tmp_path):
    """The experiment's training is replaced by a finished results table (training and its
    statistics are tested in test_tstr.py); the figures are what is under test here."""
    table = tmp_path / "results.json"
    table.write_text(json.dumps(tstr_results()))
    experiment = tmp_path / "experiment.toml"
    experiment.write_text('real_images = "real"\nreal_labels = "real.csv"\n'
                          'synthetic_images = "synthetic"\nsynthetic_labels = "synthetic.csv"\n'
                          f"labels = {list(LABELS)!r}\n")
    finished = ("import cxrgan_desktop.cli.tstr as tstr_cli\n"
                f"tstr_cli.run_tstr_command = lambda config, out, device: "
                f"json.loads(open({str(table)!r}).read())\n")
    out = tmp_path / "figures"
    outcome = _cli("tstr", str(experiment), "--out", str(out), "--device", "cpu", "--json",
                   prelude=finished)
    assert outcome == {"code": 0, "loaded": []}
    for stem in ("auroc", "learning_curve"):
        _check_png(out / f"{stem}.png")
        _check_pdf(out / f"{stem}.pdf")
