"""The Audit tab: an audit folder made by hand is opened in the window; the table keeps the
CSV's ranks, a row opens its synthetic and nearest training image side by side with linked
window/level, and the difference view holds synthetic - training (computed here with numpy
from Pillow-read files)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from cxrgan_desktop.core.fileio import sha256_file
from cxrgan_desktop.core.settings import AuditPreferences, load_settings, settings_path
from cxrgan_desktop.gui.panels.audit import AuditPanel
from cxrgan_desktop.gui.viewer.pair import DIFFERENCE_UNITS, on_grid
from cxrgan_desktop.imaging.windowing import Window
from cxrgan_desktop.tasks import audit_file as af

SIZE = 24
SPACES = ("pixels", "reid")


def _write_png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_audit(root, n_synthetic: int = 5, flagged: tuple[int, ...] = (1, 3)):
    """An audit folder, a synthetic folder of 16-bit PNGs and a training folder of 8-bit
    PNGs (ChestX-ray14 names, two patients), with rows ranked as the audit ranks them."""
    rng = np.random.default_rng(7)
    train, synthetic, folder = root / "train", root / "synthetic", root / "audit"
    training_files = []
    for patient in (900000, 900001):
        for follow_up in range(3):
            name = f"sub/{patient:08d}_{follow_up:03d}.png"
            _write_png(train / name, rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8))
            training_files.append((name, str(patient)))
    rows = []
    for i in range(n_synthetic):
        name = f"gen_{i:02d}.png"
        _write_png(synthetic / name, rng.integers(0, 65536, (SIZE, SIZE), dtype=np.uint16))
        matches = {}
        for s, space in enumerate(SPACES):
            training_name, patient = training_files[(i + 2 * s) % len(training_files)]
            is_flagged = i in flagged and space == "pixels"
            fraction = 0.0 if is_flagged else 0.05 * (i + 1) + 0.01 * s
            matches[space] = af.SpaceMatch(training_name, patient, 0.9 - 0.01 * i + 0.02 * s,
                                           fraction, is_flagged)
        rows.append(af.AuditRow(0, name, f"{i:064x}", i in flagged, af.risk_of(matches),
                                matches))
    folder.mkdir()
    (folder / af.AUDIT_CSV).write_text(af.audit_csv_text(af.ranked(rows), SPACES))
    summary = {"format": af.FORMAT, "alpha": 0.001,
               "synthetic": {"root": str(synthetic)}, "train": {"image_dir": str(train)},
               "spaces": {"pixels": {"threshold_similarity": 0.9512},
                          "reid": {"threshold_similarity": 0.8}},
               "files": {af.AUDIT_CSV: {"sha256": sha256_file(folder / af.AUDIT_CSV)}}}
    (folder / af.SUMMARY_JSON).write_text(af.summary_text(summary))
    _write_png(folder / "contact_sheet.png", np.zeros((8, 16), dtype=np.uint8))
    return folder, synthetic, train


def _csv_rows(folder):
    with open(folder / af.AUDIT_CSV, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _open_audit(qtbot, win, folder):
    menu_item = next(a for m in win.menuBar().actions() for a in m.menu().actions()
                     if a.shortcut().toString() == "Ctrl+Shift+M")
    menu_item.trigger()
    assert win.tasks.currentWidget().widget() is win.audit_panel
    win.audit.open_audit(str(folder))
    qtbot.waitUntil(lambda: win.audit_panel.report is not None, timeout=10_000)
    return win.audit_panel


def _click_row(qtbot, win, row: int):
    table = win.audit_panel.table
    win.audit_pair.pair = None
    table.scrollTo(table.audit_model.index(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton,
                     pos=table.visualRect(table.audit_model.index(row, 2)).center())
    qtbot.waitUntil(lambda: win.audit_pair.pair is not None, timeout=10_000)
    return win.audit_pair


@pytest.fixture
def shown_window(main_window, qtbot):
    main_window.resize(1400, 900)
    main_window.show()
    qtbot.waitExposed(main_window)
    return main_window


def test_table_follows_the_csv_ranks_and_marks_flagged_rows(qtbot, shown_window, tmp_path,
                                                             dialogs):
    folder, *_ = make_audit(tmp_path)
    panel = _open_audit(qtbot, shown_window, folder)
    model = panel.table.audit_model
    expected = _csv_rows(folder)
    assert model.rowCount() == len(expected) == 5
    headers = model.headers()
    for r, line in enumerate(expected):
        cells = [model.data(model.index(r, c)) for c in range(model.columnCount())]
        assert cells[0] == line["rank"] and cells[2] == line["synthetic_file"]
        assert (cells[1] != "") == (line["flagged"] == "true")
        assert cells[headers.index("pixels similarity")].startswith(
            f"{float(line['pixels_similarity']):.4f}")
        assert cells[-2:] == [line["pixels_nearest_file"], line["pixels_patient"]]
        background = model.data(model.index(r, 2), Qt.ItemDataRole.BackgroundRole)
        assert (background is not None) == (line["flagged"] == "true")
    assert [line["flagged"] for line in expected[:2]] == ["true", "true"]  # flagged first
    summary = panel.summary.text()
    assert "2 of 5 flagged" in summary and "pixels similarity ≥ 0.9512" in summary
    assert "alpha 0.1 %" in summary and not panel.setup.isVisibleTo(panel)
    # the two flagged rows matched (in pixels) training patients 900001 and 900000
    assert "matching 2 distinct training patient(s)" in summary
    assert panel.sheet_button.isEnabled() and dialogs == []


def test_a_row_opens_the_pair_with_linked_window_and_a_difference(qtbot, shown_window,
                                                                  tmp_path, dialogs):
    folder, synthetic_root, train_root = make_audit(tmp_path)
    _open_audit(qtbot, shown_window, folder)
    line = _csv_rows(folder)[2]
    pair = _click_row(qtbot, shown_window, 2)
    assert shown_window.centre.currentWidget() is pair
    assert pair.pair.synthetic_path == synthetic_root / line["synthetic_file"]
    assert pair.pair.training_path == train_root / line["pixels_nearest_file"]
    synthetic = np.asarray(Image.open(synthetic_root / line["synthetic_file"]))  # uint16
    training = np.asarray(Image.open(train_root / line["pixels_nearest_file"]))  # uint8
    assert synthetic.dtype == np.uint16 and training.dtype == np.uint8
    np.testing.assert_array_equal(pair.synthetic.image(), synthetic)
    np.testing.assert_array_equal(pair.training.image(), training.astype(np.uint16) * 257)

    # window/level is linked both ways (stored units), the difference keeps its own
    difference_window = pair.difference.window()
    pair.synthetic.set_window(Window(20000.0, 9000.0))
    assert pair.training.window() == Window(20000.0, 9000.0)
    pair.training.set_window(Window(41000.0, 3000.0))
    assert pair.synthetic.window() == Window(41000.0, 3000.0)
    assert pair.difference.window() == difference_window
    for phase, dx, dy in (("start", 0, 0), ("move", 40, -25), ("finish", 60, -30)):
        pair.training.view_box.sigWindowDrag.emit(phase, dx, dy)  # a mouse drag's steps
    assert pair.training.window() != Window(41000.0, 3000.0)
    assert pair.synthetic.window() == pair.training.window()

    # the difference: synthetic - training in [0, 1] units, centred at 0
    reference = synthetic / 65535.0 - training / 255.0
    np.testing.assert_allclose(pair.pair.difference, reference, atol=1e-6)
    shown = DIFFERENCE_UNITS.value(pair.difference.image().astype(np.float64)) / 65535.0
    np.testing.assert_allclose(shown, reference, atol=2.0 / 65535)
    window = DIFFERENCE_UNITS.to_display(pair.difference.window())
    assert window.center == 0.0
    assert pair.difference.info().units == DIFFERENCE_UNITS
    assert dialogs == []


def test_the_chosen_space_opens_that_spaces_neighbour(qtbot, shown_window, tmp_path):
    folder, _, train_root = make_audit(tmp_path)
    panel = _open_audit(qtbot, shown_window, folder)
    line = _csv_rows(folder)[0]
    pair = _click_row(qtbot, shown_window, 0)
    assert pair.pair.training_path == train_root / line["pixels_nearest_file"]
    pair.pair = None
    panel.pair_space.setCurrentIndex(panel.pair_space.findData("reid"))
    qtbot.waitUntil(lambda: pair.pair is not None, timeout=10_000)
    assert pair.pair.training_path == train_root / line["reid_nearest_file"]
    model = panel.table.audit_model
    assert model.headers()[-2] == "Nearest training (re-id)"
    assert model.data(model.index(0, model.columnCount() - 2)) == line["reid_nearest_file"]
    np.testing.assert_array_equal(
        pair.training.image(),
        np.asarray(Image.open(train_root / line["reid_nearest_file"])).astype(np.uint16) * 257)


def test_save_pair_writes_what_is_shown(qtbot, shown_window, tmp_path):
    folder, *_ = make_audit(tmp_path)
    _open_audit(qtbot, shown_window, folder)
    pair = _click_row(qtbot, shown_window, 1)
    pair.synthetic.set_window(Window(30000.0, 20000.0))
    out = tmp_path / "saved"
    out.mkdir()
    runner = shown_window.audit.save_pair_to(out)
    with qtbot.waitSignal(runner.done, timeout=10_000):
        pass
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 4 and all(name.startswith("audit_rank0002_") for name in written)
    parts = {name.rsplit("_", 1)[1][:-4]: np.asarray(Image.open(out / name))
             for name in written}
    np.testing.assert_array_equal(parts["synthetic"], pair.synthetic.displayed_bytes())
    np.testing.assert_array_equal(parts["training"], pair.training.displayed_bytes())
    np.testing.assert_array_equal(parts["difference"], pair.difference.displayed_bytes())
    assert parts["pair"].shape == (SIZE, 3 * SIZE + 2 * 8)
    np.testing.assert_array_equal(parts["pair"][:, SIZE + 8:2 * SIZE + 8], parts["training"])


def test_a_changed_table_is_refused_with_the_reason(qtbot, main_window, tmp_path, dialogs):
    folder, *_ = make_audit(tmp_path)
    with open(folder / af.AUDIT_CSV, "a", encoding="utf-8") as handle:
        handle.write("\n")
    main_window.audit.open_audit(str(folder))
    qtbot.waitUntil(lambda: dialogs != [], timeout=10_000)
    assert dialogs[0][1] == "Cannot open the audit" and "changed since" in dialogs[0][2]
    assert main_window.audit_panel.report is None


def test_differently_sized_training_image_is_area_averaged_onto_the_synthetic_grid():
    rng = np.random.default_rng(3)
    big = rng.random((32, 48), dtype=np.float32)
    blocks = big.reshape(16, 2, 24, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(on_grid(big, (16, 24)), blocks, atol=1e-6)


def test_settings_round_trip_and_persist(qtbot, main_window, tmp_path):
    """The form goes to the window's settings (Settings.audit), saved with the rest when the
    window closes; there is no file of the tab's own."""
    panel = main_window.audit_panel
    prefs = AuditPreferences(train_dir=str(tmp_path), labels_csv="", synthetic=str(tmp_path),
                             n=12, seed=0, held_out=str(tmp_path), spaces=["pixels"],
                             reid_model="reid-demo", k=7, alpha_percent=0.5,
                             out_dir=str(tmp_path / "out"))
    panel.load_settings(prefs)
    assert panel.controls.run_button.isEnabled(), panel.controls.run_button.toolTip()
    request = panel.request()
    assert request.alpha == pytest.approx(0.005) and request.n == 12
    assert request.spaces == ("pixels",) and request.reid_model == ""
    stored = AuditPreferences()
    panel.store_settings(stored)
    assert stored == prefs
    panel.use_pixels.setChecked(False)
    assert not panel.controls.run_button.isEnabled()
    assert "tick at least one" in panel.controls.run_button.toolTip()
    panel.use_pixels.setChecked(True)
    main_window.close()
    assert load_settings().audit == prefs
    assert json.loads(settings_path().read_text())["audit"]["k"] == 7
    assert not (settings_path().parent / "audit_tab.json").exists()


def test_the_tab_starts_from_the_saved_settings(qtbot, tmp_path):
    """A settings file written by hand (alpha as a JSON whole number) fills the form."""
    from cxrgan_desktop.gui.shell.main_window import MainWindow

    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_text(json.dumps({
        "schema_version": 2, "audit": {"train_dir": str(tmp_path), "spaces": ["reid"],
                                       "k": 9, "alpha_percent": 1}}))
    window = MainWindow()
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: not window._device_probe.is_running(), timeout=20_000)
    panel = window.audit_panel
    assert panel.train_dir.text() == str(tmp_path) and panel.k.value() == 9
    assert panel.alpha.value() == 1.0
    assert panel.use_reid.isChecked() and not panel.use_pixels.isChecked()


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    """The audit tests' scene with planted copies (tests/reference/planted_copies.py), small:
    10 training and 10 held-out phantom patients, one copy of each kind, 32 px."""
    from tests.reference.planted_copies import build_scene

    generates = np.random.default_rng(1).random((6, 32, 32)).astype(np.float32)
    return build_scene(tmp_path_factory.mktemp("gui_audit_scene"), generates,
                       train_patients=10, held_patients=10, per_kind=1, size=32)


def test_run_an_audit_from_the_tab(qtbot, main_window, tiny_scene, tmp_path, dialogs):
    panel, scene = main_window.audit_panel, tiny_scene
    out = tmp_path / "audit"
    panel.load_settings(AuditPreferences(
        train_dir=str(scene.train_dir), labels_csv=str(scene.labels_csv),
        synthetic=str(scene.synthetic_dir), held_out=str(scene.held_dir), spaces=["pixels"],
        out_dir=str(out)))
    assert panel.controls.run_button.isEnabled(), panel.controls.run_button.toolTip()
    qtbot.mouseClick(panel.controls.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: main_window.runner is not None, timeout=5_000)
    with qtbot.waitSignal(main_window.runner.done, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: panel.report is not None, timeout=5_000)
    assert dialogs == []
    model = panel.table.audit_model
    files = [model.data(model.index(r, 2)) for r in range(model.rowCount())]
    assert sorted(files) == sorted(p.name for p in scene.synthetic_dir.iterdir())
    assert files == [line["synthetic_file"] for line in _csv_rows(out)]
    exact = next(name for name, (kind, *_) in scene.planted.items() if kind == "exact")
    row = files.index(exact)
    _, patient, source = scene.planted[exact]
    assert model.data(model.index(row, 1)) != ""  # flagged
    assert model.cells(model.row_at(row))[-2:] == [source, patient]
    assert main_window.settings.audit.out_dir == str(out)  # remembered when run


def test_installed_reid_models_are_offered_by_name(qtbot):
    from cxrgan_desktop.engine.reid.installed import reid_dir

    reid_dir().mkdir(parents=True)
    for name in ("zeta", "alpha-reid"):
        (reid_dir() / f"{name}.safetensors").write_bytes(b"")
    panel = AuditPanel()
    qtbot.addWidget(panel)
    assert [panel.reid_model.itemText(i) for i in range(panel.reid_model.count())] == \
        ["alpha-reid", "zeta"]
    panel.use_pixels.setChecked(False)
    panel.use_reid.setChecked(True)
    assert panel.request().spaces == ("reid",)
    assert panel.request().reid_model == "alpha-reid"
    panel.reid_model.setEditText("")
    assert "Re-identification: choose a model" in panel.problems()
