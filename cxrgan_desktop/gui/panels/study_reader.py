"""Reader mode: a radiologist takes a blinded study, one image at a time.

The window shows nothing a reader could use besides the pixels: no file names, no ids, no
source. Every answer goes to :meth:`ReaderSession.record` (an atomic save) before the next
image appears, so closing the window, a crash or a power cut loses nothing; opening the study
again under the same name continues at the first unanswered case. Reading time counts only
while the window is active, so a coffee break does not read as a slow decision.
"""

from __future__ import annotations

import time
from html import escape as _escape
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.shipped import read_resource_text
from cxrgan_desktop.gui.viewer.viewer import ImageViewer
from cxrgan_desktop.study.package import PackageError, StudyPackage
from cxrgan_desktop.study.session import ReaderSession, SessionError, open_session

MIN_VIEW_SECONDS = 0.3  # ratings sooner than this after an image appears are ignored:
# a double key press must not answer the next case unseen


def _page(*widgets: QWidget, stretch_after: bool = True) -> QWidget:
    page = QWidget()
    page.setObjectName("page")
    layout = QVBoxLayout(page)
    layout.setContentsMargins(80, 60, 80, 60)
    layout.addStretch(1)
    for widget in widgets:  # centred by stretches: an aligned item loses height-for-width
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(widget)
        row.addStretch(1)
        layout.addLayout(row)
    if stretch_after:
        layout.addStretch(2)
    return page


def _text(html: str, point_size: int = 13, width: int = 720) -> QLabel:
    label = QLabel(html)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setFixedWidth(width)  # a fixed width lets the layout give wrapped text its height
    font = label.font()
    font.setPointSize(point_size)
    label.setFont(font)
    return label


class ActiveClock:
    """Seconds a case has been on screen while the application was active."""

    def __init__(self) -> None:
        self._banked = 0.0
        self._since: float | None = None

    def restart(self) -> None:
        self._banked, self._since = 0.0, time.monotonic()

    def pause(self) -> None:
        if self._since is not None:
            self._banked += time.monotonic() - self._since
            self._since = None

    def resume(self) -> None:
        if self._since is None:
            self._since = time.monotonic()

    def seconds(self) -> float:
        running = 0.0 if self._since is None else time.monotonic() - self._since
        return self._banked + running


class RatingBar(QWidget):
    """One button per point of the scale, labelled with its number key."""

    rated = Signal(int)

    def __init__(self, labels: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = QButtonGroup(self)
        self.group.setExclusive(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        half = len(labels) // 2
        for rating, text in enumerate(labels, start=1):
            button = QPushButton(f"{rating}\n{text}")
            button.setCheckable(True)
            button.setMinimumHeight(56)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the window shortcuts
            tone = "#23384d" if rating <= half else "#4d2f23"
            button.setStyleSheet(f"QPushButton {{ background: {tone}; color: #f0f0f0; "
                                 "border: 1px solid #666; padding: 4px 10px; }"
                                 "QPushButton:checked { border: 3px solid #f0d060; }"
                                 "QPushButton:disabled { color: #777; }")
            button.setToolTip(f"Press {rating}")
            self.group.addButton(button, rating)
            layout.addWidget(button, 1)
        self.group.idClicked.connect(self._clicked)

    def _clicked(self, rating: int) -> None:
        self.group.button(rating).setChecked(False)  # the highlight is set by show_rating
        self.rated.emit(rating)

    def show_rating(self, rating: int | None) -> None:
        for button in self.group.buttons():
            button.setChecked(self.group.id(button) == rating)

    def set_answerable(self, answerable: bool) -> None:
        for button in self.group.buttons():
            button.setEnabled(answerable)


class ReaderWindow(QWidget):
    """A study from the name prompt to the last answer. ``sessions_folder`` defaults to the
    user's data folder (see :func:`cxrgan_desktop.study.session.sessions_dir`)."""

    completed = Signal(Path)  # the session file, once every case is answered

    def __init__(self, package: StudyPackage, sessions_folder: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.package = package
        self.settings = package.settings
        self.sessions_folder = sessions_folder
        self.session: ReaderSession | None = None
        self.clock = ActiveClock()
        self._practice: list = []  # PracticeCase still to show
        self._current: tuple[str, str] | None = None  # ("case" | "practice", id)
        self._awaiting_next = False  # practice feedback on screen
        self._viewing_position: int | None = None  # a scored case's place in the order
        self.setWindowTitle(self.settings.title)
        self.setStyleSheet(read_resource_text("styles", "reader.qss"))
        self.pages = QStackedWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pages)
        self._build_name_page()
        self._build_instructions_page()
        self._build_reading_page()
        self._build_end_page()
        self._build_shortcuts()
        QGuiApplication.instance().applicationStateChanged.connect(self._application_state)
        self.resize(1280, 960)
        self.name_edit.setFocus()

    # -- pages ------------------------------------------------------------------------------
    def _build_name_page(self) -> None:
        title = _text(f"<h1>{_escape(self.settings.title)}</h1>", 16)
        n_cases, n_practice = len(self.package.case_ids), len(self.package.practice)
        about = _text(f"<p>{n_cases} images"
                      + (f", after {n_practice} practice images" if n_practice else "")
                      + ". Your answers are saved on this computer as you give them; if the "
                      "program stops, open the study again with the same name to continue."
                      "</p>")
        prompt = QLabel("Your name or reader code:")
        self.name_edit = QLineEdit()
        self.name_edit.setMinimumWidth(360)
        self.name_edit.setPlaceholderText("e.g. Reader 3")
        self.name_button = QPushButton("Continue")
        self.name_button.setDefault(True)
        self.name_error = QLabel("")
        self.name_error.setStyleSheet("color: #ff8080;")
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.addWidget(prompt)
        row_layout.addWidget(self.name_edit, 1)
        row_layout.addWidget(self.name_button)
        self.name_edit.returnPressed.connect(self.enter_name)
        self.name_button.clicked.connect(self.enter_name)
        self.pages.addWidget(_page(title, about, row, self.name_error))

    def _build_instructions_page(self) -> None:
        self.instructions_label = _text("", 13)
        self.start_button = QPushButton("Start")
        self.start_button.setMinimumWidth(220)
        self.start_button.clicked.connect(self.start_reading)
        self.pages.addWidget(_page(self.instructions_label, self.start_button))

    def _build_reading_page(self) -> None:
        self.viewer = ImageViewer()
        self.viewer.set_window_locked(self.settings.window_locked)
        self.progress_label = QLabel("")
        self.progress_label.setStyleSheet("color: #e8e8e8; font-size: 14px;")
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(10)
        self.back_button = QPushButton("◀ Previous case")
        self.back_button.setToolTip("Backspace: change an earlier answer")
        self.back_button.setVisible(self.settings.allow_back)
        self.back_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.back_button.clicked.connect(self.go_back)
        header = QHBoxLayout()
        header.addWidget(self.progress_label)
        header.addWidget(self.progress_bar, 1)
        header.addWidget(self.back_button)
        self.feedback = QLabel("")
        self.feedback.setWordWrap(True)
        self.feedback.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.feedback.setStyleSheet("color: #f0f0f0; font-size: 15px; padding: 6px;")
        self.next_button = QPushButton("Next (Space)")
        self.next_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.next_button.clicked.connect(self.next_after_feedback)
        # the row keeps its height when empty, so the image does not jump when feedback shows
        for widget in (self.feedback, self.next_button):
            policy = widget.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            widget.setSizePolicy(policy)
        self.feedback.setMinimumHeight(2 * self.feedback.fontMetrics().lineSpacing() + 16)
        feedback_row = QHBoxLayout()
        feedback_row.addWidget(self.feedback, 1)
        feedback_row.addWidget(self.next_button)
        self.rating_bar = RatingBar(self.settings.scale.labels)
        self.rating_bar.rated.connect(self.rate)
        page = QWidget()
        page.setObjectName("page")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.addLayout(header)
        layout.addWidget(self.viewer, 1)
        layout.addLayout(feedback_row)
        layout.addWidget(self.rating_bar)
        self._show_feedback("")
        self.reading_page = page
        self.pages.addWidget(page)

    def _build_end_page(self) -> None:
        self.end_label = _text("", 13)
        self.copy_button = QPushButton("Save a copy for the organiser…")
        self.copy_button.clicked.connect(self.save_copy)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.addWidget(self.copy_button)
        row_layout.addWidget(close)
        self.pages.addWidget(_page(self.end_label, row))

    def _build_shortcuts(self) -> None:
        """Number keys rate; Space goes on after practice feedback; Backspace goes back where
        allowed; F11 toggles full screen. Active only while an image is on screen."""
        self.reading_shortcuts: list[QShortcut] = []
        for rating in range(1, self.settings.scale.points + 1):
            keys = [str(rating), f"Num+{rating}"]
            for key in keys:
                self._reading_shortcut(key, lambda r=rating: self.rate(r))
        for key in ("Space", "Return", "Enter"):
            self._reading_shortcut(key, self.next_after_feedback)
        if self.settings.allow_back:
            self._reading_shortcut("Backspace", self.go_back)
        if not self.settings.window_locked:
            self._reading_shortcut("R", self.viewer.reset)
            self._reading_shortcut("I", lambda: self.viewer.set_inverted(
                not self.viewer.is_inverted()))
        self._reading_shortcut("F", self.viewer.fit)
        self.start_shortcuts = []  # Enter leaves the instructions, as it leaves the name page
        for key in ("Return", "Enter"):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setAutoRepeat(False)
            shortcut.setEnabled(False)
            shortcut.activated.connect(self.start_reading)
            self.start_shortcuts.append(shortcut)
        full_screen = QShortcut(QKeySequence("F11"), self)
        full_screen.activated.connect(self.toggle_full_screen)
        self._set_reading_keys(False)

    def _reading_shortcut(self, key: str, slot) -> None:
        shortcut = QShortcut(QKeySequence(key), self)
        shortcut.setAutoRepeat(False)  # a held key answers once
        shortcut.activated.connect(slot)
        self.reading_shortcuts.append(shortcut)

    def _set_reading_keys(self, enabled: bool) -> None:
        for shortcut in self.reading_shortcuts:
            shortcut.setEnabled(enabled)

    # -- flow -------------------------------------------------------------------------------
    def enter_name(self) -> None:
        name = self.name_edit.text().strip()
        try:
            self.session = open_session(self.package, name, self.sessions_folder)
        except (SessionError, OSError) as error:
            self.name_error.setText(str(error))
            return
        if self.session.package_sha256 != self.package.sha256:
            self.name_error.setText("This name already has a session for a different copy of "
                                    "this study. Ask the organiser which file to use.")
            self.session = None
            return
        self._practice = ([] if self.session.practice_done or self.session.answers
                          else list(self.package.practice))
        if self.session.complete:
            self._show_end()
            return
        self.instructions_label.setText(self._instructions_html())
        self.start_button.setText("Continue" if self.session.answers
                                  else "Start practice" if self._practice else "Start")
        self.pages.setCurrentIndex(1)
        self.start_button.setFocus()
        for shortcut in self.start_shortcuts:
            shortcut.setEnabled(True)

    def _instructions_html(self) -> str:
        assert self.session is not None
        s = self.settings
        parts = [f"<h2>{_escape(s.title)}</h2>", f"<p>{_escape(s.instructions)}</p>"]
        scale = "".join(f"<li><b>{i}</b> &nbsp;{_escape(t)}</li>"
                        for i, t in enumerate(s.scale.labels, start=1))
        parts.append(f"<p>Answer with the buttons or the number keys:</p><ul>{scale}</ul>")
        parts.append("<p>" + ("You may go back to change an answer (Backspace)."
                              if s.allow_back else "Answers cannot be changed once given.")
                     + (" The window and level are fixed for this study." if s.window_locked
                        else " Drag on the image to change window and level; R resets it.")
                     + " Scroll to zoom; F fits the image; F11 toggles full screen.</p>")
        done = len(self.session.answers)
        if done:
            parts.append(f"<p><b>Welcome back, {_escape(self.session.reader)}.</b> You have "
                         f"answered {done} of {len(self.session.order)} images; the study "
                         "continues where you stopped.</p>")
        elif self._practice:
            parts.append(f"<p>First, {len(self._practice)} practice images"
                         + (" (you will be told the truth after each)"
                            if s.practice_feedback else "")
                         + ". They do not count.</p>")
        return "".join(parts)

    def start_reading(self) -> None:
        for shortcut in self.start_shortcuts:
            shortcut.setEnabled(False)
        self.pages.setCurrentWidget(self.reading_page)
        self._set_reading_keys(True)
        self.setFocus()
        self._show_next()

    def _show_next(self) -> None:
        assert self.session is not None
        if self._practice:
            case = self._practice[0]
            self._show_case("practice", case.id, self.package.practice_image(case.id))
            return
        position = self.session.next_position()
        if position is None:
            self._show_end()
            return
        self._show_scored(position)

    def _show_scored(self, position: int) -> None:
        assert self.session is not None
        case_id = self.session.order[position]
        self._viewing_position = position
        self._show_case("case", case_id, self.package.case_image(case_id))
        previous = self.session.answered().get(case_id)
        self.rating_bar.show_rating(previous.rating if previous else None)

    def _show_case(self, kind: str, case_id: str, image) -> None:
        self._current = (kind, case_id)
        self._awaiting_next = False
        self._show_feedback("")
        self.rating_bar.set_answerable(True)
        self.rating_bar.show_rating(None)
        self.viewer.set_image(image)  # every case starts at the full range, fitted
        self.viewer.set_inverted(False)
        self._update_progress()
        self.clock.restart()

    def _update_progress(self) -> None:
        assert self.session is not None
        total = len(self.session.order)
        if self._current and self._current[0] == "practice":
            done = len(self.package.practice) - len(self._practice)
            self.progress_label.setText(f"Practice {done + 1} of {len(self.package.practice)}")
            self.progress_bar.setRange(0, len(self.package.practice))
            self.progress_bar.setValue(done)
        else:
            position = self._viewing_position or 0
            self.progress_label.setText(f"Image {position + 1} of {total}")
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(len(self.session.answers))
        self.back_button.setEnabled(self.settings.allow_back and self._current is not None
                                    and self._current[0] == "case"
                                    and (self._viewing_position or 0) > 0)

    def rate(self, rating: int) -> None:
        """Record ``rating`` for the image on screen, then move on."""
        if (self.session is None or self._current is None or self._awaiting_next
                or self.pages.currentWidget() is not self.reading_page):
            return
        seconds = self.clock.seconds()
        if seconds < MIN_VIEW_SECONDS:
            return
        kind, case_id = self._current
        if kind == "practice":
            self._practice_answered(rating)
            return
        try:
            self.session.record(case_id, rating, seconds, self.settings.allow_back)
        except (SessionError, OSError) as error:
            QMessageBox.critical(self, "Answer not saved", f"{error}\n\nThe image stays on "
                                 "screen; answer again once the problem is fixed.")
            return
        self.rating_bar.show_rating(rating)
        self._show_next()

    def _practice_answered(self, rating: int) -> None:
        case = self._practice.pop(0)
        if not self._practice:
            self._mark_practice_done()
        if not self.settings.practice_feedback:
            self._show_next()
            return
        answer = self.settings.scale.answer(rating)
        verdict = "correct" if answer == case.truth else "not correct"
        self._awaiting_next = True
        self.rating_bar.show_rating(rating)
        self.rating_bar.set_answerable(False)
        after = ("" if self._practice else
                 f" Practice is over: the study of {len(self.package.case_ids)} images "
                 "starts next.")
        self._show_feedback(f"This image is <b>{case.truth}</b>. You answered "
                            f"“{_escape(self.settings.scale.labels[rating - 1])}”: "
                            f"{verdict}.{after}")

    def _mark_practice_done(self) -> None:
        assert self.session is not None
        try:
            self.session.mark_practice_done()
        except OSError as error:
            QMessageBox.warning(self, "Not saved", f"{error}")

    def next_after_feedback(self) -> None:
        if self._awaiting_next:
            self._show_next()

    def go_back(self) -> None:
        """Show the previous scored case with its answer, where the study allows it."""
        if (not self.settings.allow_back or self._current is None
                or self._current[0] != "case" or not self._viewing_position):
            return
        self._show_scored(self._viewing_position - 1)

    def _show_feedback(self, html: str) -> None:
        self.feedback.setText(html)
        self.feedback.setVisible(bool(html))
        self.next_button.setVisible(bool(html))

    def _show_end(self) -> None:
        assert self.session is not None
        self._set_reading_keys(False)
        self._current = None
        self.clock.pause()
        path = self.session.path
        self.end_label.setText(
            f"<h2>Thank you, {_escape(self.session.reader)}.</h2>"
            f"<p>All {len(self.session.order)} images are answered and saved.</p>"
            "<p>Your answers are in<br><code>"
            f"{_escape(str(path))}</code></p><p>Send that file to the study organiser, or "
            "save a copy somewhere easier to find.</p>")
        self.pages.setCurrentIndex(self.pages.count() - 1)
        self.completed.emit(path)

    def save_copy(self) -> None:
        from cxrgan_desktop.core.fileio import atomic_write_bytes

        if self.session is None:
            return
        start = str(Path.home() / self.session.path.name)
        target, _ = QFileDialog.getSaveFileName(self, "Save a copy of your answers", start,
                                                "Reader session (*.session.json)")
        if not target:
            return
        try:
            atomic_write_bytes(target, self.session.path.read_bytes())
        except OSError as error:
            QMessageBox.warning(self, "Not saved", f"{target}: {error}")
            return
        self.end_label.setText(self.end_label.text() + f"<p>Copy saved: <code>"
                               f"{_escape(target)}</code></p>")

    # -- window -----------------------------------------------------------------------------
    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def _application_state(self, state: Qt.ApplicationState) -> None:
        if state == Qt.ApplicationState.ApplicationActive:
            if self._current is not None:
                self.clock.resume()
        else:
            self.clock.pause()

    def closeEvent(self, event) -> None:
        if self.session is not None and self._current is not None and not self.session.complete:
            done = len(self.session.answers)
            answer = QMessageBox.question(
                self, "Stop for now?", f"{done} of {len(self.session.order)} answers are "
                "saved. Open the study again with the same name to continue. Stop now?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.clock.pause()
        self.package.close()
        super().closeEvent(event)


def open_reader_study(path: Path, parent=None, full_screen: bool = True):
    """Open ``path`` in a reader window; a damaged package gets a message naming it."""
    try:
        package = StudyPackage(path)
    except PackageError as error:
        QMessageBox.critical(parent, "Cannot open the study", f"{error}\n\nAsk the study "
                             "organiser for a new copy of the .cxrstudy file.")
        return None
    window = ReaderWindow(package, parent=parent)
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    window.showFullScreen() if full_screen else window.show()
    return window
