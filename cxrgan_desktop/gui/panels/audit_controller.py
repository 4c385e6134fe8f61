"""The Audit tab's jobs: running an audit, reading an audit folder, reading the pair a row
names, and saving it.

The audit runs in the window's job slot (one torch job at a time; Esc cancels it). Reading an
audit folder (it hashes ``audit.csv``) and reading a pair run in :class:`LatestOnly` workers,
so stepping through the table with the arrow keys stays responsive and shows the last row
chosen. The tab's form is remembered in the window's settings (``Settings.audit``), like the
other tabs': stored there when an audit starts and when the window closes, which saves them.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMessageBox

from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.jobs.latest import LatestOnly
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.gui.panels.audit import AuditPanel, AuditRequest
from cxrgan_desktop.gui.panels.audit_table import SPACE_NAMES, percent
from cxrgan_desktop.gui.viewer.pair import PairImages, PairView, read_pair, save_pair_pngs
from cxrgan_desktop.tasks.audit_file import AuditReport, AuditRow, read_audit

log = logging.getLogger(__name__)


def audit_job(request: AuditRequest, device_name: str, inception_weights: str = ""):
    """The job function (``fn(progress, cancel)``) of one audit; returns the folder read
    back, so the tab shows exactly what ``Open audit...`` would."""

    def job(progress, cancel) -> AuditReport:
        from cxrgan_desktop.engine.devices import resolve_device
        from cxrgan_desktop.tasks.audit import AuditOptions, run_audit

        options = AuditOptions(
            train_dir=Path(request.train_dir), out_dir=Path(request.out_dir),
            synthetic=request.synthetic, held_out=Path(request.held_out),
            labels_csv=Path(request.labels_csv) if request.labels_csv else None,
            n=request.n, seed=request.seed, spaces=request.spaces,
            reid_model=request.reid_model or None, k=request.k, alpha=request.alpha,
            device=str(resolve_device(device_name)),
            inception_weights=Path(inception_weights) if inception_weights else None)
        run_audit(options, progress, cancel)
        return read_audit(options.out_dir)

    return job


def pair_titles(row: AuditRow, space: str) -> tuple[str, str]:
    match = row.matches[space]
    flag = "  ⚑ flagged" if match.flagged else ""
    return (f"Synthetic #{row.rank}: {row.synthetic_file}",
            f"Nearest training ({SPACE_NAMES.get(space, space)}): {match.training_file}  "
            f"patient {match.patient}  similarity {match.similarity:.4f}  held-out "
            f"{percent(match.heldout_fraction)}{flag}")


class AuditController(QObject):
    """Wires the Audit tab to the window's job slot, the pair view and the settings."""

    pairShown = Signal()  # the pair view has a new pair: the window brings it forward

    def __init__(self, window, panel: AuditPanel, pair_view: PairView,
                 settings: Settings) -> None:
        super().__init__(window)
        self.window, self.panel, self.pair_view, self.settings = window, panel, pair_view, settings
        self.audit_loader = LatestOnly("read audit", self)
        self.audit_loader.ready.connect(self._audit_read)
        self.audit_loader.failed.connect(self._audit_not_read)
        self.pair_loader = LatestOnly("read audit pair", self)
        self.pair_loader.ready.connect(self._pair_read)
        self.pair_loader.failed.connect(
            lambda _context, message: QMessageBox.warning(self.window, "Cannot show the pair",
                                                          message))
        self.saver: JobRunner | None = None
        panel.auditRequested.connect(self.start)
        panel.cancelRequested.connect(window.cancel_job)
        panel.openAuditRequested.connect(self.open_audit)
        panel.pairRequested.connect(self.show_pair)
        panel.savePairRequested.connect(self.save_pair)
        panel.openSheetRequested.connect(self.open_contact_sheet)
        panel.copySheetRequested.connect(self.copy_contact_sheet)
        self.update_inception()
        panel.load_settings(settings.audit)
        last_audit = settings.audit.last_audit
        if last_audit and Path(last_audit).is_dir():
            self.open_audit(last_audit, quiet=True)

    def update_inception(self) -> None:
        from cxrgan_desktop.metrics import inception_weights

        found = inception_weights.find_weights(self.settings.fid.inception_weights or None)
        self.panel.set_inception_available(found is not None)

    # -- running ---------------------------------------------------------------------------
    def start(self, request: AuditRequest) -> None:
        self.store_settings()
        runner = JobRunner(audit_job(request, self.settings.device,
                                     self.settings.fid.inception_weights), "audit")
        runner.succeeded.connect(self._finished)
        self.window._start_job(runner, f"Auditing {request.synthetic} against "
                               f"{request.train_dir}…", panel=self.panel)

    def _finished(self, report: AuditReport) -> None:
        self.show_report(report)
        self.window.statusBar().showMessage(
            f"Audit written to {report.folder}: {len(report.flagged)} of {len(report.rows)} "
            "flagged", 10_000)

    # -- reading ---------------------------------------------------------------------------
    def open_audit(self, folder: str, quiet: bool = False) -> None:
        """Read an audit folder in a worker; a folder that will not read says why (unless
        it is the one remembered from last time, which may since have gone)."""
        self.audit_loader.request(partial(read_audit, folder), (folder, quiet))

    def _audit_read(self, _context, report: AuditReport) -> None:
        self.show_report(report)

    def _audit_not_read(self, context, message: str) -> None:
        folder, quiet = context
        if quiet:
            log.info("the last audit %s was not reopened: %s", folder, message)
        else:
            QMessageBox.warning(self.window, "Cannot open the audit", message)

    def show_report(self, report: AuditReport) -> None:
        self.pair_loader.drop()
        self.pair_view.clear()
        self.panel.set_pair_shown(False)
        self.panel.show_report(report)

    def show_pair(self, row: AuditRow, space: str) -> None:
        report = self.panel.report
        if report is None or space not in row.matches:
            return
        match = row.matches[space]
        synthetic, training = report.synthetic_path(row), report.training_path(match)
        captions = ((f"synthetic #{row.rank}",), (f"training, patient {match.patient}",))
        self.pair_loader.request(partial(read_pair, synthetic, training, *captions),
                                 (row, space))
        self.window.statusBar().showMessage(f"Reading {synthetic.name} and {training.name}…",
                                            0)

    def _pair_read(self, context: tuple[AuditRow, str], pair: PairImages) -> None:
        row, space = context
        self.pair_view.show_pair(pair, *pair_titles(row, space))
        self.panel.set_pair_shown(True)
        self.pairShown.emit()
        note = "; training resampled to the synthetic image's size" if pair.resampled else ""
        self.window.statusBar().showMessage(
            f"#{row.rank} {row.synthetic_file} | {row.matches[space].training_file} "
            f"(linked zoom, pan and window{note})", 0)

    # -- exports ---------------------------------------------------------------------------
    def save_pair(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Save the pair as PNG",
                                                  self.settings.last_export_folder
                                                  or str(Path.home()))
        if folder:
            self.settings.last_export_folder = folder
            self.save_pair_to(Path(folder))

    def save_pair_to(self, folder: Path) -> JobRunner | None:
        """Write the three parts as shown and side by side (encoding in a worker)."""
        pair, row = self.pair_view.pair, self.panel.current_row()
        if pair is None or (self.saver is not None and self.saver.is_running()):
            return None
        rank = f"rank{row.rank:04d}_" if row is not None else ""
        stem = f"audit_{rank}{pair.synthetic_path.stem}_{self.panel.current_space()}"
        displayed = self.pair_view.displayed()  # copies of what is on screen, now
        runner = JobRunner(lambda progress, cancel: save_pair_pngs(displayed, folder, stem),
                           "save audit pair", self)
        runner.succeeded.connect(lambda written: self.window.statusBar().showMessage(
            f"Saved {len(written)} PNG file(s) to {folder}", 10_000))
        runner.failed.connect(lambda message: QMessageBox.warning(
            self.window, "Cannot save the pair", message))
        self.saver = runner
        runner.start()
        return runner

    def open_contact_sheet(self) -> None:
        sheet = self.panel.contact_sheet()
        if sheet is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(sheet)))

    def copy_contact_sheet(self) -> None:
        """The file itself (a file manager or a document pastes it) and its path as text;
        the image is not decoded on the GUI thread."""
        sheet = self.panel.contact_sheet()
        if sheet is None:
            return
        data = QMimeData()
        data.setUrls([QUrl.fromLocalFile(str(sheet))])
        data.setText(str(sheet))
        QGuiApplication.clipboard().setMimeData(data)
        self.window.statusBar().showMessage(f"Copied {sheet}", 5000)

    # -- lifetime --------------------------------------------------------------------------
    def store_settings(self) -> None:
        self.panel.store_settings(self.settings.audit)

    def shutdown(self) -> None:
        self.audit_loader.shutdown()
        self.pair_loader.shutdown()
        if self.saver is not None:
            self.saver.wait()
