"""The Train panel drives `cxrgan train` as a process and shows what the run folder says."""

import json

import pytest

pytest.importorskip("pytestqt")

from cxrgan_desktop.gui.train_monitor import RunMonitor, eta_seconds, format_duration
from cxrgan_desktop.gui.train_panel import TrainPanel
from tests.test_training import TINY


@pytest.fixture
def tiny_setup(tmp_path):
    from cxrgan_desktop.imaging.phantom import write_phantoms

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
    assert "16 px" in panel.figures.text()
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
