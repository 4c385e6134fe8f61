"""The Train task panel: choose data and a preset, start, stop, resume, and watch.

Training runs as its own ``cxrgan train`` process, never in the window's process: the window
stays responsive, and the run can outlive the window when the user asks for it ("keep
training after closing"). Stop sends the same interrupt as Ctrl-C: the process saves a
checkpoint and exits; Resume starts it again on the same run folder and it continues exactly.
Everything shown (curves, resolution, alpha, images/s, threads, ETA, the sample grid) is read
from the run folder.

The panel sits in a scroll area: the mouse wheel scrolls it, and reaches the preset box or the
loss plot only once the user clicked into them (a wheel passing over them changed the preset
and zoomed the plot while scrolling). Status lines elide, with the whole text in the tooltip,
so that a long path never pushes the "…" buttons and Stop out of sight.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.runtime import cli_command
from cxrgan_desktop.gui.panels.train_monitor import RunMonitor, eta_seconds, format_duration

PRESET_LABELS = {"tiny64": "CPU demo 64 px (tiny network, minutes)",
                 "demo-phantom-64": "CPU 64 px, the bundled demo model's recipe (about an hour)",
                 "quick256": "Quick 256 px (small network, GPU)",
                 "paper1024": "Paper 1024 px (GPU, weeks)", "finetune": "Fine-tune a model"}


class WheelOnlyWhenFocused(QObject):
    """Event filter: a wheel event over a watched widget that does not have the keyboard
    focus is ignored, so that Qt passes it on to the scroll area around the panel.

    Why: combo boxes, spin boxes and pyqtgraph plots act on the wheel whether focused or
    not, and a user scrolling the panel changed the preset and zoomed the plot on the way.
    Watched widgets get ``StrongFocus`` (a wheel no longer gives them the focus); a click
    or Tab focuses one, and then the wheel works on it as usual.
    """

    def watch(self, widget: QWidget, target: QWidget | None = None) -> None:
        """Guard ``widget``; ``target`` receives the wheel events (a plot's viewport)."""
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        widget.setProperty("wheelFocusOwner", True)
        (target or widget).installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget):
            owner = watched
            while owner is not None and not owner.property("wheelFocusOwner"):
                owner = owner.parentWidget()
            focus = QApplication.focusWidget()
            if owner is not None and not (focus is not None and (
                    focus is owner or owner.isAncestorOf(focus))):
                event.ignore()  # propagates to the parents: the scroll area scrolls
                return True
        return super().eventFilter(watched, event)


class ElidedLabel(QLabel):
    """One line that shortens itself (an ellipsis in the middle, where long paths have the
    least telling part) to the width it gets, instead of widening the panel; the whole text
    is in the tooltip and in :meth:`text`."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        return QSize(0, super().sizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle,
                                              max(self.width(), 1))
        super().setText(shown)


def _threads_text(row: dict) -> str:
    """' · 1 thread' or ' · 2 processes x 1 thread' from a log row (older logs: nothing)."""
    if "threads" not in row:
        return ""
    threads = f"{row['threads']} thread{'s' if row['threads'] != 1 else ''}"
    processes = row.get("processes", 1)
    return f" · {processes} processes × {threads}" if processes > 1 else f" · {threads}"


def _path_row(edit: QLineEdit, button: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


class TrainPanel(QWidget):
    runFinished = Signal(object)  # Path of final.safetensors, when a run completes

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.process: subprocess.Popen | None = None
        self.monitor: RunMonitor | None = None
        self.total_images = 0

        self.preset = QComboBox()
        for name, label in PRESET_LABELS.items():
            self.preset.addItem(label, name)
        self.preset.addItem("Config file…", "file")
        self.config_file = QLineEdit()
        self.config_file.setPlaceholderText("a .toml or .json training config")
        self.data_dir, self.labels, self.init_from = QLineEdit(), QLineEdit(), QLineEdit()
        self.data_dir.setPlaceholderText("folder of PNG / JPEG / DICOM radiographs")
        self.labels.setPlaceholderText("optional Data_Entry CSV (ChestX-ray14 layout)")
        self.init_from.setPlaceholderText("generator to fine-tune (.safetensors or .pth)")
        self.run_dir = QLineEdit()
        self.run_dir.setPlaceholderText("empty: a new numbered run folder")
        browse = {}
        for key, edit, folder in (("config", self.config_file, False),
                                  ("data", self.data_dir, True), ("labels", self.labels, False),
                                  ("init", self.init_from, False), ("run", self.run_dir, True)):
            button = QPushButton("…")
            button.setFixedWidth(32)
            button.clicked.connect(lambda _=False, e=edit, f=folder: self._browse(e, f))
            browse[key] = button
        self.keep_running = QCheckBox("keep training after the window closes")
        self.hold_out = QDoubleSpinBox()  # percent of the images, as whole patients
        self.hold_out.setRange(0.0, 90.0)
        self.hold_out.setSingleStep(5.0)
        self.hold_out.setDecimals(1)
        self.hold_out.setSuffix(" % of the images (whole patients)")
        self.hold_out.setSpecialValueText("none (train on every image)")
        self.hold_out.setToolTip(
            "Keep this share of the images out of training, as whole patients (from the "
            "labels CSV's Patient ID, else from ChestX-ray14 file names), listed in the run "
            "folder's held_out.json. The memorisation audit calibrates how close a generated "
            "image may come to a training image on these real patients the generator never "
            "saw (10 % is usual). A resumed run needs the same value. "
            "cxrgan train --hold-out-patients")

        form = QFormLayout()
        form.addRow("Preset", self.preset)
        form.addRow("Config", _path_row(self.config_file, browse["config"]))
        form.addRow("Images", _path_row(self.data_dir, browse["data"]))
        form.addRow("Labels", _path_row(self.labels, browse["labels"]))
        form.addRow("Start from", _path_row(self.init_from, browse["init"]))
        form.addRow("Run folder", _path_row(self.run_dir, browse["run"]))
        form.addRow("Hold out", self.hold_out)
        form.addRow("", self.keep_running)

        self.start_button = QPushButton("Start / resume")
        self.start_button.setToolTip("Start a run, or continue the run in 'Run folder' from "
                                     "its last checkpoint")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Save a checkpoint and stop (pause): resume later")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = ElidedLabel("Choose images and a preset, then Start.")
        self.figures = QLabel("")  # short words only: wraps, and every figure stays visible
        self.figures.setWordWrap(True)
        self.plot = pg.PlotWidget(background="#101010")
        self.plot.setMinimumHeight(160)
        self.plot.addLegend(offset=(5, 5))
        self.plot.setLabel("bottom", "images shown")
        self.curve_d = self.plot.plot([], [], pen=pg.mkPen("#e6b43c", width=1.5), name="D loss")
        self.curve_g = self.plot.plot([], [], pen=pg.mkPen("#5fb3ff", width=1.5), name="G loss")
        self.wheel_guard = WheelOnlyWhenFocused(self)
        self.wheel_guard.watch(self.preset)
        self.wheel_guard.watch(self.hold_out)
        self.wheel_guard.watch(self.plot, self.plot.viewport())
        for spin in self.findChildren(QAbstractSpinBox):
            self.wheel_guard.watch(spin)
        self.sample = QLabel("sample grid appears here")
        self.sample.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.sample.setMinimumHeight(200)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.figures)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.sample, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.poll)
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self._preset_changed()

    # -- actions ------------------------------------------------------------------------
    def command(self) -> list[str]:
        """The ``cxrgan train`` command line the panel runs (shown to the user, too)."""
        choice = self.preset.currentData()
        config = self.config_file.text().strip() if choice == "file" else choice
        args = [*cli_command(), "train", config]
        if self.data_dir.text().strip():
            args += ["--data", self.data_dir.text().strip()]
        if self.labels.text().strip():
            args += ["--labels", self.labels.text().strip()]
        if self.init_from.text().strip():
            args += ["--init-from", self.init_from.text().strip()]
        if self.hold_out.value() > 0:
            args += ["--hold-out-patients", f"{self.hold_out.value() / 100:g}"]
        args += ["--run-dir", self.run_dir.text().strip()]
        return args

    def start(self) -> None:
        if self.is_running():
            return
        from cxrgan_desktop.engine.training.config import load_config, total_images
        from cxrgan_desktop.tasks.train import new_run_dir

        choice = self.preset.currentData()
        try:
            config = load_config(self.config_file.text().strip() if choice == "file"
                                 else choice)
        except ValueError as error:
            self.status.setText(f"Cannot read the config: {error}")
            return
        if not (self.data_dir.text().strip() or config.data.image_dir):
            self.status.setText("Choose the folder of training images first.")
            return
        if not self.run_dir.text().strip():
            self.run_dir.setText(str(new_run_dir(config.name)))
        self.total_images = total_images(config)
        run = Path(self.run_dir.text().strip())
        run.mkdir(parents=True, exist_ok=True)
        self.monitor = RunMonitor(run)
        self.curve_d.setData([], [])
        self.curve_g.setData([], [])
        with open(run / "train_panel.log", "ab") as log:  # the process's output, for diagnosis
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self._set_running(True)
        self.status.setText(f"Training in {run} (process {self.process.pid})")
        self.timer.start()

    def stop(self) -> None:
        """Interrupt like Ctrl-C: the run saves a checkpoint and exits."""
        if self.is_running():
            os.kill(self.process.pid, signal.SIGINT)
            self.status.setText("Stopping: saving a checkpoint…")

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def shutdown(self) -> None:
        """The window is closing: stop the run unless the user chose to keep it going."""
        if self.is_running() and not self.keep_running.isChecked():
            self.stop()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.timer.stop()

    # -- watching -----------------------------------------------------------------------
    def poll(self) -> None:
        if self.monitor is None:
            return
        if self.monitor.poll_rows():
            self._show_rows()
        sample = self.monitor.new_sample()
        if sample is not None:
            pixmap = QPixmap(str(sample))
            self.sample.setPixmap(pixmap.scaled(self.sample.size(),
                                                Qt.AspectRatioMode.KeepAspectRatio))
        if self.process is not None and self.process.poll() is not None:
            self._finished(self.process.returncode)

    def _show_rows(self) -> None:
        rows = self.monitor.rows
        images = [r["images"] for r in rows]
        self.curve_d.setData(images, [r.get("loss_d", 0.0) for r in rows])
        with_g = [r for r in rows if "loss_g" in r]
        self.curve_g.setData([r["images"] for r in with_g], [r["loss_g"] for r in with_g])
        last = rows[-1]
        phase = f"fade-in {last['alpha']:.2f}" if last.get("fading") else "stable"
        self.figures.setText(
            f"{last['resolution']} px, {phase} · {last['images']:,} of "
            f"{self.total_images:,} images · {last.get('images_per_s', 0):.1f} images/s"
            f"{_threads_text(last)} · "
            f"ETA {format_duration(eta_seconds(rows, self.total_images))}")
        if self.total_images:
            self.progress.setValue(round(1000 * min(last["images"] / self.total_images, 1)))

    def _finished(self, code: int) -> None:
        self.timer.stop()
        self._set_running(False)
        self.poll_rows_once()
        run = Path(self.run_dir.text())
        final = run / "final.safetensors"
        if code == 0 and final.exists():
            self.status.setText(f"Finished: {final}")
            self.runFinished.emit(final)
        elif code == 0:
            self.status.setText("Stopped at the requested point; Start / resume continues.")
        elif code == 130:
            self.status.setText("Stopped with a checkpoint; Start / resume continues it.")
        else:
            self.status.setText(f"Training failed (exit {code}); see "
                                f"{run / 'train_panel.log'}")
        self.process = None

    def poll_rows_once(self) -> None:
        if self.monitor is not None and self.monitor.poll_rows():
            self._show_rows()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def _preset_changed(self, *_args) -> None:
        choice = self.preset.currentData()
        self.config_file.setEnabled(choice == "file")
        self.init_from.setEnabled(choice in ("finetune", "file"))

    def _browse(self, edit: QLineEdit, folder: bool) -> None:
        start = edit.text() or str(Path.home())
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a file", start)
        if path:
            edit.setText(path)
