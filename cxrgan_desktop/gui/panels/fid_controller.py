"""The FID panel's jobs: measuring, downloading and locating the weights, and the history.

Kept out of the main window, which only hands over its job runner (one job at a time) and
its settings. The loaded Inception network is kept between measurements (loading and
checking 91 MB takes a few seconds) and reloaded when the weights file changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QMessageBox

from cxrgan_desktop.core.settings import Settings, save_settings
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.gui.panels.fid import FIDPanel, FIDPanelRequest
from cxrgan_desktop.metrics import inception_weights as weights
from cxrgan_desktop.metrics.fid_history import load_history, save_history


class InceptionKeeper:
    """The last loaded network, keyed by its file's path and modification time."""

    def __init__(self) -> None:
        self._key: tuple[str, int] | None = None
        self._loaded: Any = None

    def get(self, user_path: str | None):
        path = weights.require_weights(user_path)
        key = (str(path), path.stat().st_mtime_ns)
        if key != self._key:
            self._loaded = weights.load_inception(user_path)
            self._key = key
        return self._loaded


def request_sides(request: FIDPanelRequest):
    """(real, fake, second reference or None) as the FID job parses them."""
    from cxrgan_desktop.tasks.fid import parse_side

    reference_b = parse_side(request.reference_b) if request.reference_b else None
    return (parse_side(request.real, request.n, request.seed),
            parse_side(request.fake, request.n, request.seed), reference_b)


def fid_job(request: FIDPanelRequest, device_name: str, user_weights: str | None,
            keeper: InceptionKeeper):
    """The job function (``fn(progress, cancel)``) of one measurement; returns its record."""

    def job(progress, cancel):
        from cxrgan_desktop.engine.devices import resolve_device
        from cxrgan_desktop.metrics.fid_history import append_history
        from cxrgan_desktop.tasks.fid import FIDOptions, compute_fid, needs_inception

        real, fake, reference_b = request_sides(request)
        inception = None  # statistics files, or another feature network: none needed
        if needs_inception(request.features, real, fake, reference_b):
            progress(0.0, "loading the Inception network")
            inception = keeper.get(user_weights)
        options = FIDOptions(resize=request.resize, batch_size=request.batch_size,
                             device=resolve_device(device_name), features=request.features,
                             relative_split=request.relative_split)
        record = compute_fid(real, fake, options, progress, cancel, inception,
                             reference_b).to_record()
        append_history(record)
        return record

    return job


class FIDController:
    """Wires the FID panel to the main window's job runner and settings."""

    def __init__(self, window, panel: FIDPanel, settings: Settings) -> None:
        self.window, self.panel, self.settings = window, panel, settings
        self.keeper = InceptionKeeper()
        panel.fidRequested.connect(self.start)
        panel.cancelRequested.connect(window.cancel_job)
        panel.locateWeightsRequested.connect(self.locate)
        panel.downloadWeightsRequested.connect(self.download)
        panel.clearHistoryRequested.connect(self.clear_history)
        panel.load_settings(settings.fid)
        panel.show_history(load_history())
        self.update_weights_status()

    def user_weights(self) -> str | None:
        return self.settings.fid.inception_weights or None

    def update_weights_status(self) -> None:
        self.panel.set_weights_status(weights.find_weights(self.user_weights()),
                                      weights.standard_spec().file_name)

    def start(self, request: FIDPanelRequest) -> None:
        from cxrgan_desktop.tasks.fid import needs_inception

        try:
            needs_weights = needs_inception(request.features, *request_sides(request))
        except ValueError:  # a side that is not there: the job reports it, naming the side
            needs_weights = request.features == "inception"
        if needs_weights and weights.find_weights(self.user_weights()) is None:
            self.ask_for_weights()
            return
        self.panel.store_settings(self.settings.fid)
        runner = JobRunner(fid_job(request, self.settings.device, self.user_weights(),
                                   self.keeper), "fid")
        runner.succeeded.connect(self._finished)
        self.window._start_job(runner, f"Measuring FID: {request.real} vs {request.fake}…",
                               panel=self.panel)

    def _finished(self, record: dict[str, Any]) -> None:
        self.panel.show_result(record)
        self.panel.show_history(load_history())
        self.window.statusBar().showMessage(f"FID {record['fid']:.3f}", 10_000)

    def ask_for_weights(self) -> None:
        spec = weights.standard_spec()
        box = QMessageBox(self.window)
        box.setIcon(QMessageBox.Icon.Information)
        box.setWindowTitle("FID Inception weights needed")
        box.setText(f"FID needs {spec.description}: the file <b>{spec.file_name}</b> "
                    "(about 91 MB), which is not on this machine.")
        box.setInformativeText(f"Download it now from<br>{spec.url}<br><br>or, without "
                               "internet access, fetch it on another machine and locate it "
                               "here. Its SHA-256 is checked either way.")
        download = box.addButton("Download", QMessageBox.ButtonRole.AcceptRole)
        locate = box.addButton("Locate file…", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is download:
            self.download()
        elif box.clickedButton() is locate:
            self.panel.locate_weights()

    def download(self) -> None:
        runner = JobRunner(lambda progress, cancel: weights.download_weights(
            progress=progress, cancel=cancel), "download weights")
        runner.succeeded.connect(lambda path: self._weights_ready(path, "downloaded"))
        self.window._start_job(runner, f"Downloading {weights.standard_spec().file_name}…",
                               panel=self.panel)

    def locate(self, file: str) -> None:
        """Check the chosen file's hash (in the worker: 91 MB), then remember its path."""
        runner = JobRunner(lambda progress, cancel: (weights.verify_weights(Path(file)),
                                                     file)[1], "check weights")

        def accepted(path: str) -> None:
            self.settings.fid.inception_weights = path
            save_settings(self.settings)
            self._weights_ready(Path(path), "checked")

        runner.succeeded.connect(accepted)
        self.window._start_job(runner, f"Checking {Path(file).name}…", panel=self.panel)

    def _weights_ready(self, path: Path, how: str) -> None:
        self.update_weights_status()
        self.window.statusBar().showMessage(f"Inception weights {how}: {path}", 10_000)

    def clear_history(self) -> None:
        save_history([])
        self.panel.show_history([])

    def store_settings(self) -> None:
        self.panel.store_settings(self.settings.fid)
