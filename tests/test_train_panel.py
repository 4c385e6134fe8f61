"""The Train panel drives `cxrgan train` as a process and shows what the run folder says."""

import json

import pytest

pytest.importorskip("pytestqt")

from cxrgan_desktop.gui.panels.train import TrainPanel
from cxrgan_desktop.gui.panels.train_monitor import RunMonitor, eta_seconds, format_duration
from tests.test_training import TINY


@pytest.fixture
def tiny_setup(tmp_path):
    from cxrgan_desktop.tasks.phantom import write_phantoms

    write_phantoms(tmp_path / "data", n=16, size=16, seed=3)
    config = {**TINY, "batch_sizes": {"4": 8, "8": 8, "16": 8},
              "data": {"cache_dir": str(tmp_path / "cache")}}
    (tmp_path / "tiny.json").write_text(json.dumps(config))
    return tmp_path


def _panel(qtbot, setup):
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.preset.setCurrentIndex(panel.preset.findData("file"))
    panel.config_file.setText(str(setup / "tiny.json"))
    panel.data_dir.setText(str(setup / "data"))
    panel.run_dir.setText(str(setup / "run"))
    return panel


def test_monitor_reads_only_complete_rows(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"images": 8, "images_per_s": 4}\n{"images": 16, "imag')
    monitor = RunMonitor(tmp_path)
    assert [r["images"] for r in monitor.poll_rows()] == [8]
    with open(log, "a") as handle:
        handle.write('es_per_s": 4}\n')
    assert [r["images"] for r in monitor.poll_rows()] == [16]
    assert eta_seconds(monitor.rows, 56) == pytest.approx(10.0)
    assert format_duration(3725) == "1 h 02 min" and format_duration(None) == "–"


def test_panel_trains_to_the_end_and_shows_curves_and_samples(qtbot, tiny_setup):
    panel = _panel(qtbot, tiny_setup)
    finished = []
    panel.runFinished.connect(finished.append)
    panel.start()
    assert panel.is_running() and panel.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not panel.is_running() and panel.process is None, timeout=120_000)
    assert finished and finished[0].name == "final.safetensors"
    assert "Finished" in panel.status.text()
    assert len(panel.curve_d.getData()[0]) > 3 and panel.progress.value() == 1000
    assert "16 px" in panel.figures.text() and "· 1 thread ·" in panel.figures.text()
    assert not panel.sample.pixmap().isNull()


def test_stop_saves_a_checkpoint_and_resume_continues(qtbot, tiny_setup):
    config = json.loads((tiny_setup / "tiny.json").read_text())
    config.update(images_first=4000, log_every=8)  # long enough to stop midway
    (tiny_setup / "tiny.json").write_text(json.dumps(config))
    panel = _panel(qtbot, tiny_setup)
    panel.start()
    qtbot.waitUntil(lambda: panel.monitor is not None and len(panel.monitor.rows) >= 2,
                    timeout=120_000)
    panel.stop()
    qtbot.waitUntil(lambda: panel.process is None, timeout=60_000)
    assert "checkpoint" in panel.status.text()
    assert (tiny_setup / "run" / "checkpoints" / "latest.pt").exists()
    panel.poll_rows_once()
    before, shown = len(panel.monitor.rows), panel.monitor.rows[-1]["images"]
    panel.start()  # a fresh monitor reads the whole history, then the new rows
    qtbot.waitUntil(lambda: len(panel.monitor.rows) > before, timeout=120_000)
    assert panel.monitor.rows[before]["images"] > shown  # continued, not restarted
    panel.shutdown()  # the window closing stops the run (keep_running unchecked)
    assert not panel.is_running()


def _wheel(widget, steps=-1):
    """A mouse-wheel turn over the middle of ``widget`` (negative: towards the user)."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(),
                        QPoint(0, 120 * steps), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_wheel_changes_the_preset_and_zooms_the_plot_only_when_focused(qtbot):
    """Scrolling the panel over the preset box or the loss plot must not change them."""
    panel = TrainPanel()
    qtbot.addWidget(panel)
    panel.resize(500, 900)
    panel.show()
    qtbot.waitExposed(panel)
    panel.start_button.setFocus()
    index = panel.preset.currentIndex()
    _wheel(panel.preset)
    assert panel.preset.currentIndex() == index
    view = panel.plot.getViewBox()
    before = view.viewRange()
    _wheel(panel.plot.viewport())
    assert view.viewRange() == before
    panel.preset.setFocus()  # clicked into: the wheel works on it as usual
    qtbot.waitUntil(panel.preset.hasFocus)
    _wheel(panel.preset)
    assert panel.preset.currentIndex() == index + 1
    panel.plot.setFocus()
    qtbot.waitUntil(panel.plot.hasFocus)
    _wheel(panel.plot.viewport())
    assert view.viewRange() != before


def test_a_long_status_keeps_the_buttons_in_view(qtbot, tmp_path):
    """A long path in the status line elides instead of widening the panel past its
    scroll area (which hid the '…' buttons and Stop)."""
    from cxrgan_desktop.gui.shell.main_window import _scrolling

    panel = TrainPanel()
    area = _scrolling(panel)
    qtbot.addWidget(area)
    area.resize(480, 800)
    area.show()
    qtbot.waitExposed(area)
    long_path = "/very/long/" + "x" * 400 + "/run/train_panel.log"
    panel.status.setText(f"Training failed (exit 1); see {long_path}")
    panel.figures.setText("64 px, stable · 58,016 of 58,000 images · 36.9 images/s · "
                          "2 processes × 1 thread · ETA 0 min 00 s")
    qtbot.wait(50)
    width = area.viewport().width()
    for button in (panel.stop_button, panel.start_button,
                   *panel.findChildren(type(panel.stop_button), None)):
        right = button.mapTo(area.viewport(), button.rect().topRight()).x()
        assert right <= width, button.text()
    assert panel.status.text().endswith("train_panel.log")  # the whole text is kept
    assert panel.status.toolTip() == panel.status.text()


def test_presets_offer_the_cpu_demo_first():
    from cxrgan_desktop.engine.training.config import preset_names
    from cxrgan_desktop.gui.panels.train import PRESET_LABELS

    assert set(PRESET_LABELS) == set(preset_names())
    assert next(iter(PRESET_LABELS)) == "tiny64"
