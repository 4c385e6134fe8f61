"""The Study tab: build a blinded study, take one as a reader, and analyse the answers.

Analysis reads either the readers' session files with the answer key (scored here, the way
``cxrgan study score`` does) or a ``results.csv`` from anywhere; scoring and the statistics
take well under a second for any realistic study, so they run on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.settings import Settings

STUDY_FILTER = "Reader studies (*.cxrstudy);;All files (*)"
KEY_FILTER = "Answer keys (*.key.json);;All files (*)"
SESSION_FILTER = "Reader sessions (*.session.json);;All files (*)"
RESULTS_FILTER = "Results tables (*.csv);;All files (*)"


def _note(html: str) -> QLabel:
    """A wrapped explanatory line: the dock is narrow, and an unwrapped label would widen
    the whole main window past the screen."""
    label = QLabel(html)
    label.setWordWrap(True)
    return label


class StudyPanel(QWidget):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.windows: list[QWidget] = []  # results and reader windows kept alive

        build = QGroupBox("1. Build a study (organiser)")
        self.build_button = QPushButton("Build a study…")
        self.build_button.setToolTip("Real images and a model or folder of synthetic ones "
                                     "become one blinded package and a separate answer key")
        build_layout = QVBoxLayout(build)
        build_layout.addWidget(_note("Makes <code>NAME.cxrstudy</code> for readers and "
                                      "<code>NAME.key.json</code> for you, and audits the "
                                      "package for anything that gives the answer away."))
        build_layout.addWidget(self.build_button)

        take = QGroupBox("2. Take a study (reader)")
        self.take_button = QPushButton("Open a study as a reader…")
        self.take_button.setToolTip("Full screen; answers are saved as they are given "
                                    "(Ctrl+Shift+R)")
        take_layout = QVBoxLayout(take)
        take_layout.addWidget(_note("Or start the app as <code>cxrgan-desktop --study "
                                     "FILE.cxrstudy</code> on the reader's computer."))
        take_layout.addWidget(self.take_button)

        analyse = QGroupBox("3. Analyse the answers (organiser)")
        self.key_path = QLineEdit(settings.study.key)
        self.key_path.setPlaceholderText("the study's .key.json")
        key_browse = QPushButton("Browse…")
        key_browse.clicked.connect(self._browse_key)
        key_row = QHBoxLayout()
        key_row.addWidget(QLabel("Key:"))
        key_row.addWidget(self.key_path, 1)
        key_row.addWidget(key_browse)
        self.sessions = QListWidget()
        self.sessions.setMaximumHeight(110)
        self.sessions.addItems(settings.study.sessions)
        add_files, add_folder = QPushButton("Add files…"), QPushButton("Add folder…")
        clear = QPushButton("Clear")
        add_files.clicked.connect(self._add_session_files)
        add_folder.clicked.connect(self._add_session_folder)
        clear.clicked.connect(self.sessions.clear)
        session_buttons = QHBoxLayout()
        for button in (add_files, add_folder, clear):
            session_buttons.addWidget(button)
        self.analyse_button = QPushButton("Analyse sessions")
        self.analyse_button.setDefault(True)
        self.analyse_button.clicked.connect(self.analyse_sessions)
        self.table_button = QPushButton("Analyse a results table (.csv)…")
        self.table_button.setToolTip("A table with the columns reader,case,truth,rating,"
                                     "answer,seconds, from this app or elsewhere")
        self.table_button.clicked.connect(self._choose_results_table)
        analyse_layout = QVBoxLayout(analyse)
        analyse_layout.addLayout(key_row)
        analyse_layout.addWidget(QLabel("Readers' session files (*.session.json):"))
        analyse_layout.addWidget(self.sessions)
        analyse_layout.addLayout(session_buttons)
        analyse_layout.addWidget(self.analyse_button)
        analyse_layout.addWidget(self.table_button)

        layout = QVBoxLayout(self)
        layout.addWidget(build)
        layout.addWidget(take)
        layout.addWidget(analyse)
        layout.addStretch(1)
        self.build_button.clicked.connect(self.open_builder)
        self.take_button.clicked.connect(self.choose_study)

    # -- build and take ---------------------------------------------------------------------
    def open_builder(self) -> None:
        from cxrgan_desktop.gui.panels.study_builder import StudyBuilderDialog

        dialog = StudyBuilderDialog(self.settings.study, self.settings.device, self)
        dialog.built.connect(self._study_built)
        dialog.show()
        self.builder = dialog

    def _study_built(self, result) -> None:
        self.key_path.setText(str(result.key))

    def choose_study(self) -> None:
        start = self.settings.study.out_folder or str(Path.home())
        file, _ = QFileDialog.getOpenFileName(self, "Open a reader study", start, STUDY_FILTER)
        if file:
            self.open_study(Path(file))

    def open_study(self, path: Path, full_screen: bool = True):
        from cxrgan_desktop.gui.panels.study_reader import open_reader_study

        window = open_reader_study(path, self.window(), full_screen)
        if window is not None:
            self.windows.append(window)
        return window

    # -- analysis ---------------------------------------------------------------------------
    def _browse_key(self) -> None:
        file, _ = QFileDialog.getOpenFileName(self, "The study's answer key",
                                              self.key_path.text() or str(Path.home()),
                                              KEY_FILTER)
        if file:
            self.key_path.setText(file)

    def session_files(self) -> list[str]:
        return [self.sessions.item(i).text() for i in range(self.sessions.count())]

    def add_sessions(self, files: list[str]) -> None:
        known = set(self.session_files())
        for file in files:
            if file not in known:
                known.add(file)
                self.sessions.addItem(file)

    def sessions_start_folder(self) -> str:
        """Where to look for session files first: beside the last ones added, else beside
        the key (readers' files usually come back to the study folder), else this
        machine's reader-sessions folder, else home."""
        from cxrgan_desktop.study.session import sessions_dir

        listed = self.session_files()
        key = Path(self.key_path.text().strip())
        for candidate in ([Path(listed[-1]).parent] if listed else []) + [
                key.parent if key.name else None, sessions_dir(), Path.home()]:
            if candidate is not None and candidate.is_dir():
                return str(candidate)
        return str(Path.home())

    def _add_session_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Readers' session files",
                                                self.sessions_start_folder(), SESSION_FILTER)
        self.add_sessions(files)

    def _add_session_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of session files",
                                                  self.sessions_start_folder())
        if folder:
            found = sorted(str(p) for p in Path(folder).rglob("*.session.json"))
            if not found:
                QMessageBox.information(self, "No sessions", f"{folder} holds no "
                                        "*.session.json files.")
            self.add_sessions(found)

    def analyse_sessions(self):
        """Score the listed sessions against the key and show the results window."""
        from cxrgan_desktop.study.key import AnswerKeyError, read_key
        from cxrgan_desktop.study.scoring import score_sessions
        from cxrgan_desktop.study.session import SessionError, load_session

        key_file, files = self.key_path.text().strip(), self.session_files()
        if not key_file or not files:
            QMessageBox.information(self, "Analyse", "Choose the study's answer key and add "
                                    "the readers' session files first.")
            return None
        try:
            key = read_key(key_file)
            scored = score_sessions(key, [load_session(f) for f in files])
        except (AnswerKeyError, SessionError) as error:
            QMessageBox.warning(self, "Cannot analyse", str(error))
            return None
        self.settings.study.key, self.settings.study.sessions = key_file, files
        labels = {cid: case.labels for cid, case in key.cases.items()}
        return self._show_results(scored.rows, labels, f"{len(files)} session file(s), key "
                                  f"{Path(key_file).name}", True, scored.warnings)

    def _choose_results_table(self) -> None:
        file, _ = QFileDialog.getOpenFileName(self, "A results table", str(Path.home()),
                                              RESULTS_FILTER)
        if file:
            self.analyse_table(Path(file))

    def analyse_table(self, path: Path):
        from cxrgan_desktop.study.results_table import ResultsTableError, read_results

        try:
            rows = read_results(path)
        except ResultsTableError as error:
            QMessageBox.warning(self, "Cannot analyse", str(error))
            return None
        return self._show_results(rows, None, path.name, False, [])

    def _show_results(self, rows, labels, source: str, from_sessions: bool,
                      warnings: list[str]):
        from cxrgan_desktop.gui.reports.study_results import StudyResultsWindow
        from cxrgan_desktop.study.analysis import analyse

        if not rows:
            QMessageBox.information(self, "Analyse", "No answers to analyse yet.")
            return None
        window = StudyResultsWindow(rows, analyse(rows, labels), source, from_sessions,
                                    warnings, self.window())
        window.show()
        self.windows.append(window)
        return window
