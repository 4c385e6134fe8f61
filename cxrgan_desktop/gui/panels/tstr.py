"""The TSTR tab: set up a train-on-synthetic, test-on-real experiment, run it with progress
and cancel, and open its results.

The tab writes exactly what ``cxrgan tstr`` reads (*Save as experiment file…*), runs the same
``run_tstr`` job in a worker thread, and keeps its results folder, so an interrupted run
continues at its arm when started again, from here or from the command line.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.settings import TSTRPreferences
from cxrgan_desktop.engine.classifier.installed import ARCHITECTURE_NAMES
from cxrgan_desktop.gui.jobs.controls import JobControls
from cxrgan_desktop.gui.jobs.worker import JobRunner

CSV_FILTER = "Label files (*.csv);;All files (*)"
OPTIONAL_ARMS = (("synthetic", "Synthetic only", "trained on the synthetic archive alone"),
                 ("mixed", "Real + synthetic", "all real training images plus synthetic ones "
                  "(mix ratio synthetic per real)"),
                 ("scarce", "Scarce real data", "real subsets of growing size, each alone and "
                  "with the mixed arm's synthetic images: the learning curve"))


class PathRow(QWidget):
    """A line edit with a Browse button, for a folder or a file."""

    changed = Signal()

    def __init__(self, title: str, folder: bool, placeholder: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title, self.folder = title, folder
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)
        self.edit.textChanged.connect(self.changed)

    def text(self) -> str:
        return self.edit.text().strip()

    def set_text(self, text: str) -> None:
        self.edit.setText(text)

    def _browse(self) -> None:
        start = self.text() or str(Path.home())
        if self.folder:
            chosen = QFileDialog.getExistingDirectory(self, self.title, start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self.title, start, CSV_FILTER)
        if chosen:
            self.edit.setText(chosen)


def _spin(low: int, high: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setToolTip(tip)
    return box


class TSTRPanel(QWidget):
    """Collects a TSTR experiment, runs it, and hands finished results to a results window."""

    resultsReady = Signal(object, str)  # results dict, results folder

    def __init__(self, preferences: TSTRPreferences, device: str = "auto",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preferences, self.device = preferences, device
        self.runner: JobRunner | None = None
        self.windows: list[QWidget] = []

        self.real_images = PathRow("Real images", True, "folder of real radiographs")
        self.real_labels = PathRow("Real labels", False, "their Data_Entry CSV (patients!)")
        self.synthetic_images = PathRow("Synthetic images", True, "an LCO archive or folder")
        self.synthetic_labels = PathRow("Synthetic labels", False,
                                        "default: the folder's Data_Entry*.csv")
        self.labels = QLineEdit()
        self.labels.setPlaceholderText("default: every finding both label files have")
        self.labels.setToolTip("Comma-separated ChestX-ray14 findings to classify")
        from_data = QPushButton("From the data")
        from_data.setToolTip("Fill in the findings with positives in both label files")
        from_data.clicked.connect(self.fill_labels)
        label_row = QHBoxLayout()
        label_row.addWidget(self.labels, 1)
        label_row.addWidget(from_data)
        data = QGroupBox("Data")
        data_form = QFormLayout(data)
        data_form.addRow("Real images:", self.real_images)
        data_form.addRow("Real labels:", self.real_labels)
        data_form.addRow("Synthetic:", self.synthetic_images)
        data_form.addRow("Synthetic labels:", self.synthetic_labels)
        data_form.addRow("Findings:", label_row)

        arms = QGroupBox("Arms (every arm is tested on the same held-out real patients)")
        arms_layout = QVBoxLayout(arms)
        baseline = QCheckBox("Real (the baseline every arm is compared with)")
        baseline.setChecked(True)
        baseline.setEnabled(False)
        arms_layout.addWidget(baseline)
        self.arm_boxes: dict[str, QCheckBox] = {}
        for kind, text, tip in OPTIONAL_ARMS:
            box = QCheckBox(text)
            box.setToolTip(tip)
            self.arm_boxes[kind] = box
            arms_layout.addWidget(box)
        self.mix_ratio = QDoubleSpinBox()
        self.mix_ratio.setRange(0.05, 20.0)
        self.mix_ratio.setSingleStep(0.25)
        self.mix_ratio.setToolTip("Synthetic images added per real training image")
        self.scarce_fractions = QLineEdit()
        self.scarce_fractions.setToolTip("Fractions of the real training patients kept in the "
                                         "scarce arms, e.g. 0.1, 0.25, 0.5 (nested subsets)")
        arm_form = QFormLayout()
        arm_form.addRow("Mix ratio:", self.mix_ratio)
        arm_form.addRow("Scarce fractions:", self.scarce_fractions)
        arms_layout.addLayout(arm_form)

        recipe = QGroupBox("Classifier recipe (the same for every arm)")
        recipe_form = QFormLayout(recipe)
        self.architecture = QComboBox()
        self.architecture.addItems(ARCHITECTURE_NAMES)
        self.architecture.setToolTip("densenet121: CheXNet's network; densenet-small: 13x "
                                     "fewer operations, for CPUs")
        self.input_size = _spin(32, 1024, "Pixels the classifier sees")
        self.epochs = _spin(1, 500, "Epochs per arm (the best validation epoch is kept)")
        self.batch_size = _spin(2, 1024, "Images per step")
        self.seed = _spin(0, 2**31 - 1, "Decides the split, the arms' subsets and training")
        self.test_fraction = QDoubleSpinBox()
        self.test_fraction.setRange(0.05, 0.9)
        self.test_fraction.setSingleStep(0.05)
        self.test_fraction.setToolTip("Share of real patients held out as the test set")
        self.bootstrap = _spin(100, 100_000, "Patient-bootstrap resamples for the intervals")
        for label, widget in (("Network:", self.architecture), ("Input size:", self.input_size),
                              ("Epochs:", self.epochs), ("Batch size:", self.batch_size),
                              ("Seed:", self.seed), ("Test fraction:", self.test_fraction),
                              ("Bootstrap:", self.bootstrap)):
            recipe_form.addRow(label, widget)

        self.out_folder = PathRow("Results folder", True, "where results and arms are kept")
        out_form = QFormLayout()
        out_form.addRow("Results folder:", self.out_folder)
        self.controls = JobControls("Run experiment", "Train every arm and compare them on "
                                    "the real test set; finished arms are kept")
        save = QPushButton("Save as experiment file…")
        save.setToolTip("The same experiment for 'cxrgan tstr FILE' on a GPU server")
        save.clicked.connect(self.save_experiment)
        open_results = QPushButton("Open results…")
        open_results.setToolTip("Show a results.json written earlier (here or by cxrgan tstr)")
        open_results.clicked.connect(self.choose_results)
        file_row = QHBoxLayout()
        file_row.addWidget(save)
        file_row.addWidget(open_results)

        intro = QLabel("Train the same classifier on real, synthetic and mixed data and test "
                       "each on real patients it never saw: does synthetic data help?")
        intro.setWordWrap(True)
        layout = QVBoxLayout(self)
        for widget in (intro, data, arms, recipe):
            layout.addWidget(widget)
        layout.addLayout(out_form)
        layout.addWidget(self.controls)
        layout.addLayout(file_row)
        layout.addStretch(1)

        self.controls.run_button.clicked.connect(self.start)
        self.controls.cancel_button.clicked.connect(self.cancel)
        for row in (self.real_images, self.real_labels, self.synthetic_images, self.out_folder):
            row.changed.connect(self._update_state)
        for box in self.arm_boxes.values():
            box.toggled.connect(self._update_state)
        self.load_preferences(preferences)

    # -- preferences ------------------------------------------------------------------------
    def load_preferences(self, p: TSTRPreferences) -> None:
        for row, value in ((self.real_images, p.real_images), (self.real_labels, p.real_labels),
                           (self.synthetic_images, p.synthetic_images),
                           (self.synthetic_labels, p.synthetic_labels),
                           (self.out_folder, p.out_folder)):
            row.set_text(value)
        self.labels.setText(p.labels)
        for kind, box in self.arm_boxes.items():
            box.setChecked(kind in p.arms)
        self.mix_ratio.setValue(p.mix_ratio)
        self.scarce_fractions.setText(p.scarce_fractions)
        self.architecture.setCurrentIndex(max(self.architecture.findText(p.architecture), 0))
        self.input_size.setValue(p.input_size)
        self.epochs.setValue(p.epochs)
        self.batch_size.setValue(p.batch_size)
        self.seed.setValue(p.seed)
        self.test_fraction.setValue(p.test_fraction)
        self.bootstrap.setValue(p.bootstrap)
        self._update_state()

    def store_preferences(self) -> None:
        p = self.preferences
        p.real_images, p.real_labels = self.real_images.text(), self.real_labels.text()
        p.synthetic_images = self.synthetic_images.text()
        p.synthetic_labels = self.synthetic_labels.text()
        p.labels, p.arms = self.labels.text().strip(), self.arms()
        p.mix_ratio, p.scarce_fractions = self.mix_ratio.value(), self.scarce_fractions.text()
        p.architecture, p.input_size = self.architecture.currentText(), self.input_size.value()
        p.epochs, p.batch_size = self.epochs.value(), self.batch_size.value()
        p.seed, p.test_fraction = self.seed.value(), self.test_fraction.value()
        p.bootstrap, p.out_folder = self.bootstrap.value(), self.out_folder.text()

    # -- the experiment ---------------------------------------------------------------------
    def arms(self) -> list[str]:
        return ["real"] + [kind for kind, box in self.arm_boxes.items() if box.isChecked()]

    def _problems(self) -> list[str]:
        problems = []
        for name, row in (("real images", self.real_images),
                          ("synthetic images", self.synthetic_images)):
            if not row.text() or not Path(row.text()).is_dir():  # Path("") is "."
                problems.append(f"{name}: choose a folder")
        if not self.real_labels.text() or not Path(self.real_labels.text()).is_file():
            problems.append("real labels: choose the Data_Entry CSV")
        if not self.out_folder.text():
            problems.append("results folder: choose one")
        return problems

    def _update_state(self, *_args) -> None:
        self.mix_ratio.setEnabled(bool({"mixed", "scarce"} & set(self.arms())))
        self.scarce_fractions.setEnabled("scarce" in self.arms())
        running = self.runner is not None and self.runner.is_running()
        problems = self._problems()
        self.controls.set_running(running, not problems)
        if not running:
            self.controls.run_button.setToolTip("; ".join(problems) or "Train every arm and "
                                                "compare them on the real test set")

    def _synthetic_labels(self) -> Path:
        from cxrgan_desktop.engine.tstr.config import find_label_file

        given = self.synthetic_labels.text()
        return Path(given) if given else find_label_file(Path(self.synthetic_images.text()))

    def fill_labels(self) -> None:
        """The findings both label files have, into the Findings field."""
        from cxrgan_desktop.engine.tstr.config import shared_findings

        try:
            found = shared_findings(self.real_labels.text(), self._synthetic_labels())
        except (OSError, ValueError) as error:
            self.controls.status.setText(f"Cannot read the labels: {error}")
            return
        self.labels.setText(", ".join(found))
        self.controls.status.setText(f"{len(found)} findings have positives in both label "
                                     "files" if found else "No finding has positives on "
                                     "both sides")

    def config(self):
        """The experiment as ``cxrgan tstr`` takes it; ValueError names what is wrong."""
        from cxrgan_desktop.engine.classifier.training import ClassifierTrainConfig
        from cxrgan_desktop.engine.tstr.config import TSTRConfig, shared_findings

        synthetic_labels = self._synthetic_labels()
        labels = tuple(t.strip() for t in self.labels.text().split(",") if t.strip()) or \
            shared_findings(self.real_labels.text(), synthetic_labels)
        if not labels:
            raise ValueError("no finding has positives in both label files")
        try:
            fractions = tuple(float(t) for t in self.scarce_fractions.text().split(",")
                              if t.strip())
        except ValueError:
            raise ValueError("scarce fractions: numbers between 0 and 1, comma-separated") \
                from None
        recipe = ClassifierTrainConfig(
            architecture=self.architecture.currentText(), input_size=self.input_size.value(),
            labels=labels, epochs=self.epochs.value(), batch_size=self.batch_size.value())
        return TSTRConfig(
            real_images=Path(self.real_images.text()), real_labels=Path(self.real_labels.text()),
            synthetic_images=Path(self.synthetic_images.text()),
            synthetic_labels=synthetic_labels, labels=labels, arms=tuple(self.arms()),
            mix_ratio=self.mix_ratio.value(), scarce_fractions=fractions or (0.1, 0.25, 0.5),
            test_fraction=self.test_fraction.value(), seed=self.seed.value(),
            bootstrap=self.bootstrap.value(), classifier=recipe)

    def start(self) -> None:
        if self.runner is not None and self.runner.is_running():
            return
        try:
            config = self.config()
        except (OSError, ValueError) as error:
            self.controls.status.setText(f"Cannot run: {error}")
            return
        self.store_preferences()
        out, device = Path(self.out_folder.text()), self.device

        def job(progress, cancel):
            from cxrgan_desktop.engine.devices import resolve_device
            from cxrgan_desktop.engine.tstr.config import write_config
            from cxrgan_desktop.tasks.tstr import run_tstr

            out.mkdir(parents=True, exist_ok=True)
            write_config(config, out / "experiment.toml")  # the run's own command-line twin
            return run_tstr(config, out, str(resolve_device(device)), progress, cancel)

        self.runner = JobRunner(job, "TSTR experiment", self)
        self.runner.progress.connect(self.controls.show_progress)
        self.runner.succeeded.connect(lambda results: self._finished(results, out))
        self.runner.failed.connect(lambda message: self.controls.status.setText(
            f"Failed: {message}"))
        self.runner.cancelled.connect(lambda: self.controls.status.setText(
            f"Cancelled. Finished arms are kept in {out / 'arms'}; run again to continue."))
        self.runner.done.connect(self._update_state)
        self.runner.start()
        self._update_state()

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
            self.controls.status.setText("Cancelling after the current batch…")

    def is_running(self) -> bool:
        return self.runner is not None and self.runner.is_running()

    def _finished(self, results: dict, out: Path) -> None:
        self.controls.show_progress(1.0, f"Done: results in {out}")
        self.show_results(results, out)

    # -- files ------------------------------------------------------------------------------
    def save_experiment(self) -> None:
        try:
            config = self.config()
        except (OSError, ValueError) as error:
            self.controls.status.setText(f"Cannot save: {error}")
            return
        start = str(Path(self.out_folder.text() or Path.home()) / "experiment.toml")
        file, _ = QFileDialog.getSaveFileName(self, "Save the experiment", start,
                                              "Experiment (*.toml *.json)")
        if file:
            from cxrgan_desktop.engine.tstr.config import write_config

            written = write_config(config, file)
            self.controls.status.setText(f"Saved {written}; run it with: cxrgan tstr "
                                         f"{written}")

    def choose_results(self) -> None:
        start = self.out_folder.text() or str(Path.home())
        file, _ = QFileDialog.getOpenFileName(self, "Open TSTR results", start,
                                              "TSTR results (results.json);;All files (*)")
        if file:
            self.open_results(Path(file))

    def open_results(self, path: Path) -> None:
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(results, dict) or not {"arms", "split"} <= set(results):
                raise ValueError("no arms or split")
        except OSError as error:
            self.controls.status.setText(f"{path}: cannot be read ({error})")
            return
        except ValueError as error:
            self.controls.status.setText(f"{path}: not the results.json of a TSTR "
                                         f"experiment ({error})")
            return
        self.show_results(results, path.parent)

    def show_results(self, results: dict, folder: Path) -> None:
        from cxrgan_desktop.gui.reports.tstr_results import TSTRResultsWindow

        window = TSTRResultsWindow(results, folder)
        self.windows.append(window)
        window.show()
        self.resultsReady.emit(results, str(folder))
