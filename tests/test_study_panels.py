"""The Study tab: the builder dialog runs a build and shows the audit; sessions and results
tables are analysed into the results window; its export writes the report and real PNG and
PDF plots."""

from __future__ import annotations

import json
import math

import pytest
from PySide6.QtWidgets import QMessageBox

from cxrgan_desktop.core.settings import Settings, StudyPreferences
from cxrgan_desktop.gui.panels.study import StudyPanel
from cxrgan_desktop.gui.panels.study_builder import StudyBuilderDialog
from cxrgan_desktop.gui.reports.study_results import COLUMNS, summary_cells
from cxrgan_desktop.study.analysis import reader_stats
from cxrgan_desktop.study.design import StudySettings
from cxrgan_desktop.study.key import read_key
from cxrgan_desktop.study.package import StudyPackage
from cxrgan_desktop.study.results_table import ResultRow, write_results
from cxrgan_desktop.study.simulate import simulate_sessions
from cxrgan_desktop.tasks.study_build import StudyPlan, build_study


@pytest.fixture(scope="module")
def sources(phantom_study_sources):
    return phantom_study_sources(14, 64, (5, 6))


@pytest.fixture(scope="module")
def simulated(sources, tmp_path_factory):
    """A study and three simulated readers' sessions."""
    real, synthetic = sources
    root = tmp_path_factory.mktemp("panel_study")
    built = build_study(StudyPlan([str(real)], 12, 12, synthetic=[str(synthetic)], seed=1,
                                  settings=StudySettings(image_size=64)), root, "sim")
    sessions = simulate_sessions(StudyPackage(built.package), read_key(built.key), 3,
                                 root / "sessions", seed=4)
    return built, [str(s.path) for s in sessions]


@pytest.fixture(autouse=True)
def no_dialogs(monkeypatch):
    shown: list[str] = []
    for kind in ("information", "warning", "critical"):
        monkeypatch.setattr(QMessageBox, kind, lambda *a, **k: shown.append(a[2]))
    return shown


def test_the_builder_dialog_builds_and_shows_the_audit(qtbot, sources, tmp_path):
    real, synthetic = sources
    preferences = StudyPreferences(real=[str(real)], synthetic=[str(synthetic)], n_real=5,
                                  n_synthetic=5, practice=1, image_size=256,
                                  out_folder=str(tmp_path), name="panel")
    dialog = StudyBuilderDialog(preferences)
    qtbot.addWidget(dialog)
    assert dialog.source.currentData() == "folders"  # no model in the plan: folders
    assert dialog.controls.run_button.isEnabled()
    dialog.scale.setText("real, fake, maybe")  # odd: refused with the reason, nothing built
    dialog.controls.run_button.click()
    assert "even number" in dialog.controls.status.text()
    assert not (tmp_path / "panel.cxrstudy").exists()
    dialog.scale.setText("Real, Synthetic")
    dialog.window_locked.setChecked(True)
    with qtbot.waitSignal(dialog.built, timeout=60_000) as blocker:
        dialog.controls.run_button.click()
    result = blocker.args[0]
    assert result.audit.passed and "Leak audit passed" in dialog.verdict.text()
    assert "answer key (keep; never send)" in dialog.audit.toPlainText()
    package = StudyPackage(tmp_path / "panel.cxrstudy")
    assert package.settings.window_locked and package.settings.scale.points == 2
    assert len(package.case_ids) == 10 and len(package.practice) == 2
    assert package.settings.image_size == 256
    dialog.reject()
    assert preferences.window_locked and preferences.out_folder == str(tmp_path)


def test_sessions_are_analysed_and_exported(qtbot, simulated, tmp_path, no_dialogs):
    built, session_files = simulated
    settings = Settings()
    panel = StudyPanel(settings)
    qtbot.addWidget(panel)
    assert panel.analyse_sessions() is None and "answer key" in no_dialogs[-1]
    panel.key_path.setText(str(built.key))
    panel.add_sessions(session_files + session_files[:1])  # a duplicate is listed once
    assert panel.session_files() == session_files
    window = panel.analyse_sessions()
    qtbot.addWidget(window)
    assert settings.study.key == str(built.key) and settings.study.sessions == session_files
    table = window.table
    assert table.columnCount() == len(COLUMNS) and table.rowCount() == 4
    assert table.item(3, 0).text() == "all readers (pooled)" and table.item(3, 1).text() == "72"
    assert table.item(3, 0).font().bold()
    assert window.analysis.pooled.accuracy == pytest.approx(
        window.analysis.pooled.correct / 72)
    curves = [line.get_label() for line in window.figures["roc"].axes[0].get_lines()
              if not line.get_label().startswith("_")]
    assert len(curves) == 3 and all("AUC" in name for name in curves)

    written = window.export_to(tmp_path / "export")
    names = {p.name for p in written}
    assert names == {"summary.json", "report.txt", "mrmcaov.csv", "imrmc_input.imrmc",
                     "results.csv", "roc.png", "roc.pdf", "accuracy.png", "accuracy.pdf"}
    for name in ("roc.png", "accuracy.png"):
        data = (tmp_path / "export" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    for name in ("roc.pdf", "accuracy.pdf"):
        data = (tmp_path / "export" / name).read_bytes()
        assert data[:5] == b"%PDF-" and b"%%EOF" in data[-64:]
    summary = json.loads((tmp_path / "export" / "summary.json").read_text())
    assert summary["pooled"]["n"] == 72 and len(summary["readers"]) == 3
    assert not list((tmp_path / "export").glob(".*partial*"))  # no leftovers


def test_a_results_table_from_elsewhere(qtbot, tmp_path, no_dialogs):
    panel = StudyPanel(Settings())
    qtbot.addWidget(panel)
    bad = tmp_path / "bad.csv"
    bad.write_text("reader,case,truth\nr1,c1,real\n")
    assert panel.analyse_table(bad) is None and "bad.csv" in no_dialogs[-1]
    rows = [ResultRow("r1", f"c{i}", truth, rating, "synthetic" if rating > 3 else "real",
                      None)
            for i, (truth, rating) in enumerate([("real", 1), ("real", 4), ("synthetic", 5),
                                                 ("synthetic", 6), ("real", 2)])]
    table = tmp_path / "results.csv"
    write_results(table, rows)
    window = panel.analyse_table(table)
    qtbot.addWidget(window)
    assert window.table.rowCount() == 2 and window.table.item(0, 1).text() == "5"
    assert window.table.item(0, 2).text() == "80.0 %"
    assert window.table.item(0, 9).text() == "–"  # no times in this table
    assert "results.csv" not in {p.name for p in window.export_to(tmp_path / "out")}


def test_undefined_statistics_show_as_dashes():
    only_real = [ResultRow("r", f"c{i}", "real", 2, "real", 1.0) for i in range(4)]
    cells = summary_cells(reader_stats("r", only_real))
    assert math.isnan(reader_stats("r", only_real).sensitivity)
    assert cells[5] == "–" and cells[7] == "–" and cells[6] == "100.0 %"


def test_session_files_are_looked_for_beside_the_key_then_beside_the_last_ones(qtbot,
                                                                              tmp_path):
    from cxrgan_desktop.study.session import sessions_dir

    panel = StudyPanel(Settings())
    qtbot.addWidget(panel)
    sessions_dir().mkdir(parents=True)
    assert panel.sessions_start_folder() == str(sessions_dir())  # no key yet
    study = tmp_path / "study"
    study.mkdir()
    panel.key_path.setText(str(study / "study.key.json"))
    assert panel.sessions_start_folder() == str(study)
    returned = tmp_path / "from_readers"
    returned.mkdir()
    (returned / "a.session.json").write_text("{}")
    panel.add_sessions([str(returned / "a.session.json")])
    assert panel.sessions_start_folder() == str(returned)
