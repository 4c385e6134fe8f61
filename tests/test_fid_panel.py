"""The FID panel: request building, warnings, the history table, and a measurement run
from the main window on the random-weights network."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMessageBox

from cxrgan_desktop.core.settings import FIDPreferences, load_settings
from cxrgan_desktop.gui.panels.fid import FIDPanel
from cxrgan_desktop.gui.panels.fid_history_table import row_cells
from cxrgan_desktop.gui.shell.main_window import MainWindow
from cxrgan_desktop.metrics import inception_weights as iw
from cxrgan_desktop.metrics.fid_history import load_history


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from cxrgan_desktop.tasks.phantom import write_phantoms

    root = tmp_path_factory.mktemp("panel_sets")
    return (write_phantoms(root / "real", n=5, size=32, seed=1, images_per_patient=1),
            write_phantoms(root / "fake", n=4, size=32, seed=2, images_per_patient=1))


def _record(fid=3.5, n_real=5000, n_fake=100, kid=True):
    return {"finished": "2026-11-22T10:11:12+00:00", "fid": fid,
            "kid": {"mean": 0.0012, "std": 0.0003, "subsets": 100, "subset_size": 100,
                    "seed": 0, "kernel": "(x.y/d + 1)^3"} if kid else None,
            "real": {"kind": "folder", "location": "/data/real", "label": "/data/real",
                     "n": n_real},
            "fake": {"kind": "model", "location": "segal2020", "label": "model:segal2020",
                     "n": n_fake, "seed": 4},
            "settings": {"resize": "antialias", "device": "cpu", "weights_sha256": "ab"},
            "warnings": ["synthetic: N = 100 < 2048"], "seconds": 12.5}


def test_run_needs_two_usable_sides_and_small_n_warns(qtbot, folders, monkeypatch):
    from cxrgan_desktop.store import zoo

    real, fake = folders
    monkeypatch.setattr(zoo, "bundled_models", lambda: [])  # a build without the demo model
    panel = FIDPanel()
    qtbot.addWidget(panel)
    panel.real.set_side_text(str(real / "missing"))
    assert not panel.controls.run_button.isEnabled()
    assert "no such folder" in panel.controls.run_button.toolTip()
    panel.real.set_side_text(str(real))
    panel.fake.set_side_text(str(fake))
    assert panel.controls.run_button.isEnabled()
    assert panel.size_warning.text() == "" and not panel.n.isEnabled()
    panel.fake.set_side_text("model:")  # no model installed
    assert not panel.controls.run_button.isEnabled()
    assert "no model installed" in panel.controls.run_button.toolTip()
    assert panel.n.isEnabled() and "2048" in panel.size_warning.text()
    panel.n.setValue(4096)
    assert panel.size_warning.text() == ""


def test_settings_round_trip(qtbot, folders):
    real, _ = folders
    panel = FIDPanel()
    qtbot.addWidget(panel)
    prefs = FIDPreferences(real=str(real), fake="/somewhere/stats.npz", n=5000, seed=7,
                           resize="pytorch-fid", batch_size=8)
    panel.load_settings(prefs)
    assert panel.fake.current_kind() == "stats"
    stored = FIDPreferences()
    panel.store_settings(stored)
    assert stored == prefs


def test_history_rows_and_copy(qtbot):
    panel = FIDPanel()
    qtbot.addWidget(panel)
    panel.show_history([_record(1.0, kid=False), _record(2.5)])
    assert panel.table.rowCount() == 2
    assert panel.table.item(0, 5).text() == "2.500 ⚠"  # newest first, small N marked
    assert panel.table.item(1, 6).text() == "n/a"
    assert "segal2020 (seed 4)" in panel.table.item(0, 3).text()
    assert "weights_sha256: ab" in panel.table.item(0, 0).toolTip()
    assert row_cells(_record(n_fake=4096))[5] == "3.500"
    panel.table.selectRow(0)
    text = panel.table.copy_selection()
    assert text.splitlines()[0].startswith("When\tReal\tN")
    assert "2.500" in QGuiApplication.clipboard().text()


def test_measure_from_the_window_keeps_history(qtbot, folders, fid_weights, monkeypatch):
    real, fake = folders
    window = MainWindow()
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: not window._device_probe.is_running(), timeout=20_000)
    panel = window.fid_panel
    assert "not on this machine" in panel.weights_label.text()
    panel.real.set_side_text(str(real))
    panel.fake.set_side_text(str(fake))

    asked = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: asked.append(self.text()))
    panel.controls.run_button.click()  # no weights yet: the dialog explains, nothing runs
    assert asked and iw.standard_spec().file_name in asked[0]
    assert window.runner is None

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(fid_weights), ""))
    panel.locate_button.click()  # checks the hash in the worker, then remembers the path
    qtbot.waitUntil(lambda: not window.runner.is_running(), timeout=20_000)
    qtbot.wait(50)
    assert str(fid_weights) in panel.weights_label.text()
    assert load_settings().fid.inception_weights == str(fid_weights)

    panel.controls.run_button.click()
    qtbot.waitUntil(lambda: not window.runner.is_running(), timeout=60_000)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5_000)
    history = load_history()
    assert len(history) == 1 and history[0]["real"]["n"] == 5
    assert f"FID {history[0]['fid']:.3f}" in panel.result_label.text()
    assert "N &lt; 2048" in panel.result_label.text() or "N < 2048" in panel.result_label.text()
    window.close()
    assert load_settings().fid.real == str(real)


def _fid_tab(qtbot, monkeypatch) -> tuple[MainWindow, list[str]]:
    """A main window ready to measure, and the texts of the message boxes it would show."""
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: asked.append(self.text()))
    window = MainWindow()
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: not window._device_probe.is_running(), timeout=20_000)
    return window, asked


def test_two_statistics_files_are_measured_in_the_window_without_weights(qtbot, tmp_path,
                                                                         monkeypatch):
    """No weights on this machine, no dialog asking for them: the FID of two .npz files is
    mean and covariance arithmetic (reference: the analytic FID of diagonal covariances)."""
    import numpy as np

    rng = np.random.default_rng(5)
    mu_a, mu_b = rng.normal(size=2048), rng.normal(size=2048)
    var_a, var_b = rng.uniform(0.5, 2, 2048), rng.uniform(0.5, 2, 2048)
    np.savez(tmp_path / "real.npz", mu=mu_a, sigma=np.diag(var_a))
    np.savez(tmp_path / "fake.npz", mu=mu_b, sigma=np.diag(var_b))
    expected = float(np.sum((mu_a - mu_b) ** 2) + np.sum(var_a + var_b
                                                          - 2 * np.sqrt(var_a * var_b)))
    window, asked = _fid_tab(qtbot, monkeypatch)
    panel = window.fid_panel
    assert iw.find_weights() is None
    panel.real.set_side_text(str(tmp_path / "real.npz"))
    panel.fake.set_side_text(str(tmp_path / "fake.npz"))
    panel.controls.run_button.click()
    assert asked == []
    qtbot.waitUntil(lambda: window.runner is not None and not window.runner.is_running(),
                    timeout=60_000)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5_000)
    assert load_history()[0]["fid"] == pytest.approx(expected, rel=1e-9)
    assert f"FID {expected:.3f}" in panel.result_label.text()
    window.close()


def test_relative_fd_from_the_window(qtbot, tmp_path, monkeypatch):
    """Tick the relative FD, choose a second real set: the result names the ratio, and the
    history keeps it with the second set's N (reference: FD from the definition)."""
    import numpy as np
    import scipy.linalg

    from cxrgan_desktop.metrics.stats_file import FeatureStats, save_stats

    sets = {}
    for name, seed, shift in (("real", 40, 0.0), ("b", 41, 0.0), ("fake", 42, 1.5)):
        features = np.random.default_rng(seed).normal(shift, 1.0, size=(50, 4)).astype(
            np.float32)
        stats = FeatureStats(features.mean(0).astype(np.float64),
                             np.cov(features.astype(np.float64), rowvar=False), 50,
                             {"network": "test", "weights_sha256": "0" * 64, "resize": "antialias",
                              "input_size": 299, "feature_dim": 4}, features)
        save_stats(tmp_path / f"{name}.npz", stats, with_features=True)
        sets[name] = features.astype(np.float64)

    def fd(a, b):
        s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        return float(np.sum((a.mean(0) - b.mean(0)) ** 2)
                     + np.trace(s_a + s_b - 2 * scipy.linalg.sqrtm(s_a @ s_b).real))

    window = MainWindow()
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: not window._device_probe.is_running(), timeout=20_000)
    panel = window.fid_panel
    panel.real.set_side_text(str(tmp_path / "real.npz"))
    panel.fake.set_side_text(str(tmp_path / "fake.npz"))
    assert not panel.reference_b.isVisibleTo(panel)
    panel.relative.setChecked(True)
    assert panel.reference_b.isVisibleTo(panel)
    assert not panel.controls.run_button.isEnabled()  # the second set is not chosen yet
    panel.reference_b.set_side_text(str(tmp_path / "b.npz"))
    assert panel.controls.run_button.isEnabled()
    panel.controls.run_button.click()
    qtbot.waitUntil(lambda: window.runner is not None and not window.runner.is_running(),
                    timeout=60_000)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5_000)
    relative = load_history()[0]["relative"]
    ratio = fd(sets["real"], sets["fake"]) / fd(sets["real"], sets["b"])
    assert relative["ratio"] == pytest.approx(ratio, rel=1e-6)
    assert relative["real_b"]["n"] == 50
    assert f"relative FD <b>{ratio:.2f}</b>" in panel.result_label.text()
    window.close()
    prefs = load_settings().fid
    assert prefs.relative and prefs.reference_b == str(tmp_path / "b.npz")


def test_classifier_features_from_the_window_without_inception(qtbot, folders, monkeypatch):
    """Features: the bundled demo classifier. No Inception weights, no dialog; the history
    names the network (reference: FD of the classifier's features of the PNGs read with
    Pillow, from the definition)."""
    import numpy as np
    import scipy.linalg
    import torch
    from PIL import Image

    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.classifier.installed import resolve_classifier

    name = "demo-phantom-64-classifier"
    classifier = load_classifier(resolve_classifier(name)).classifier

    def features(folder):
        images = [np.asarray(Image.open(p), np.float64) / 65535.0
                  for p in sorted(folder.glob("*.png"))]
        with torch.inference_mode():
            return classifier.features(torch.from_numpy(np.stack(images)).float()[:, None]
                                       ).double().numpy()

    real, fake = folders
    a, b = features(real), features(fake)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = float(np.sum((a.mean(0) - b.mean(0)) ** 2)
                     + np.trace(s_a + s_b - 2 * scipy.linalg.sqrtm(s_a @ s_b).real))
    window, asked = _fid_tab(qtbot, monkeypatch)
    panel = window.fid_panel
    panel.real.set_side_text(str(real))
    panel.fake.set_side_text(str(fake))
    panel.features.setCurrentIndex(panel.features.findData(f"classifier:{name}"))
    assert panel.features.currentIndex() > 0
    panel.controls.run_button.click()
    assert asked == []
    qtbot.waitUntil(lambda: window.runner is not None and not window.runner.is_running(),
                    timeout=60_000)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5_000)
    record = load_history()[0]
    assert record["settings"]["network"] == f"classifier:{name}"
    assert record["fid"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    window.close()
    assert load_settings().fid.features == f"classifier:{name}"


def test_relative_fd_between_halves_from_the_window(qtbot, folders, monkeypatch):
    """Relative FD, 'between patient-wise halves of the reference': no second side to choose;
    the result and the history say the reference was split (5 phantoms: each its own
    patient, halves of 3 and 2)."""
    real, fake = folders
    window, asked = _fid_tab(qtbot, monkeypatch)
    panel = window.fid_panel
    panel.real.set_side_text(str(real))
    panel.fake.set_side_text(str(fake))
    panel.features.setCurrentIndex(panel.features.findData(
        "classifier:demo-phantom-64-classifier"))
    panel.relative.setChecked(True)
    panel.relative_mode.setCurrentIndex(panel.relative_mode.findData("split"))
    assert not panel.reference_b.isVisibleTo(panel)
    assert panel.controls.run_button.isEnabled()
    panel.controls.run_button.click()
    qtbot.waitUntil(lambda: window.runner is not None and not window.runner.is_running(),
                    timeout=60_000)
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5_000)
    relative = load_history()[0]["relative"]
    assert relative["split"] == "patient-wise halves of the reference"
    assert sorted((relative["n_real_a"], relative["n_real_b"])) == [2, 3]
    assert "between reference halves" in panel.result_label.text()
    assert asked == []
    window.close()
    assert load_settings().fid.relative_split
