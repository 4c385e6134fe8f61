"""Reader mode driven by the keyboard, as a radiologist would: name, instructions, practice
with feedback, every case rated with number keys, the end page; resuming; going back only
where allowed; a locked window; a damaged package."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from cxrgan_desktop.gui.panels import study_reader as reader_window
from cxrgan_desktop.gui.panels.study_reader import ReaderWindow, open_reader_study
from cxrgan_desktop.study.design import StudySettings
from cxrgan_desktop.study.key import read_key
from cxrgan_desktop.study.package import StudyPackage
from cxrgan_desktop.study.session import load_session
from cxrgan_desktop.tasks.study_build import StudyPlan, build_study


@pytest.fixture(scope="module")
def sources(phantom_study_sources):
    return phantom_study_sources(8, 64, (3, 4))


def _build(sources, folder, **settings):
    real, synthetic = sources
    plan = StudyPlan([str(real)], 4, 4, synthetic=[str(synthetic)], seed=2, practice=1,
                     settings=StudySettings(image_size=64, **settings))
    return build_study(plan, folder, "keys")


@pytest.fixture(scope="module")
def study(sources, tmp_path_factory):
    return _build(sources, tmp_path_factory.mktemp("reader_study"))


@pytest.fixture(autouse=True)
def stop_without_asking(monkeypatch):
    """Closing a window mid-study asks the reader to confirm; a test (or its teardown)
    answers Yes rather than hang on the dialog."""
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)


@pytest.fixture
def quick(monkeypatch):
    """No minimum viewing time: the test presses keys faster than any reader."""
    monkeypatch.setattr(reader_window, "MIN_VIEW_SECONDS", 0.0)


def _open(qtbot, package_path, folder) -> ReaderWindow:
    window = ReaderWindow(StudyPackage(package_path), folder)
    qtbot.addWidget(window)
    with qtbot.waitActive(window):  # window shortcuts need the active window
        window.show()
        window.activateWindow()
    return window


def _enter(qtbot, window: ReaderWindow, name: str) -> None:
    qtbot.keyClicks(window.name_edit, name)
    qtbot.keyClick(window.name_edit, Qt.Key.Key_Return)
    assert window.pages.currentIndex() == 1, window.name_error.text()
    qtbot.keyClick(window.start_button, Qt.Key.Key_Return)  # Enter, as on the name page
    assert window.pages.currentWidget() is window.reading_page


def _press(qtbot, window: ReaderWindow, key: Qt.Key) -> None:
    qtbot.keyClick(window, key)


def test_a_reader_takes_a_study_by_keyboard(qtbot, study, tmp_path, quick):
    window = _open(qtbot, study.package, tmp_path)
    _enter(qtbot, window, "Dr Keys")
    truths = {case.id: case.truth for case in window.package.practice}
    assert len(truths) == 2 and "Practice 1 of 2" in window.progress_label.text()
    for _ in range(2):
        case_id = window._current[1]
        _press(qtbot, window, Qt.Key.Key_2)  # "probably real"
        assert window.feedback.isVisible()
        assert f"<b>{truths[case_id]}</b>" in window.feedback.text()
        verdict = "not correct" if truths[case_id] == "synthetic" else ": correct"
        assert verdict in window.feedback.text()
        _press(qtbot, window, Qt.Key.Key_5)  # ignored while the feedback is up
        _press(qtbot, window, Qt.Key.Key_Space)
    session = load_session(window.session.path)
    assert session.practice_done and session.answers == []  # practice is never scored
    assert window.progress_label.text() == "Image 1 of 8"
    ratings = [1, 6, 3, 4, 2, 5, 6, 1]
    keys = {r: getattr(Qt.Key, f"Key_{r}") for r in range(1, 7)}
    for position, rating in enumerate(ratings):
        assert window.progress_label.text() == f"Image {position + 1} of 8"
        _press(qtbot, window, Qt.Key.Key_Backspace)  # not allowed in this study: no effect
        _press(qtbot, window, keys[rating])
        saved = load_session(window.session.path)  # saved the moment it was given
        assert len(saved.answers) == position + 1
        assert saved.answers[-1].rating == rating
        assert saved.answers[-1].case == saved.order[position]
    assert window.pages.currentIndex() == window.pages.count() - 1
    assert str(window.session.path) in window.end_label.text().replace("<br>", "")
    final = load_session(window.session.path)
    assert final.complete and final.finished
    assert [a.rating for a in final.answers] == ratings
    assert all(a.seconds >= 0 for a in final.answers)
    _press(qtbot, window, Qt.Key.Key_3)  # the study is over: keys do nothing
    assert len(load_session(window.session.path).answers) == 8
    key = read_key(study.key)
    assert set(final.order) == set(key.cases)


def test_a_closed_session_resumes_where_it_stopped(qtbot, study, tmp_path, quick):
    window = _open(qtbot, study.package, tmp_path)
    _enter(qtbot, window, "Dr Resume")
    for _ in range(2):
        _press(qtbot, window, Qt.Key.Key_1)
        _press(qtbot, window, Qt.Key.Key_Space)
    for key in (Qt.Key.Key_4, Qt.Key.Key_3, Qt.Key.Key_6):
        _press(qtbot, window, key)
    order = list(window.session.order)
    window.close()

    again = _open(qtbot, study.package, tmp_path)
    qtbot.keyClicks(again.name_edit, "Dr Resume")
    qtbot.keyClick(again.name_edit, Qt.Key.Key_Return)
    assert "Welcome back" in again.instructions_label.text()
    assert again.start_button.text() == "Continue"
    qtbot.keyClick(again.start_button, Qt.Key.Key_Space)
    assert again.progress_label.text() == "Image 4 of 8"  # no practice again
    assert again._current == ("case", order[3])
    assert [a.rating for a in again.session.answers] == [4, 3, 6]


def test_answers_too_fast_to_have_seen_the_image_are_ignored(qtbot, study, tmp_path):
    window = _open(qtbot, study.package, tmp_path)
    qtbot.keyClicks(window.name_edit, "Dr Quick")
    qtbot.keyClick(window.name_edit, Qt.Key.Key_Return)
    window.start_button.click()
    window._practice.clear()  # straight to the scored cases
    window._show_next()
    _press(qtbot, window, Qt.Key.Key_1)
    assert window.session.answers == []
    qtbot.wait(int(1000 * reader_window.MIN_VIEW_SECONDS) + 50)
    _press(qtbot, window, Qt.Key.Key_1)
    assert len(window.session.answers) == 1


def test_going_back_and_a_locked_window(qtbot, sources, tmp_path, quick):
    built = _build(sources, tmp_path / "study", allow_back=True, window_locked=True,
                   practice_feedback=False)
    window = _open(qtbot, built.package, tmp_path / "sessions")
    assert window.viewer.controls.isHidden() and window.viewer.histogram.isHidden()
    assert window.viewer.is_window_locked()
    _enter(qtbot, window, "Dr Back")
    _press(qtbot, window, Qt.Key.Key_1)  # practice without feedback: straight on
    _press(qtbot, window, Qt.Key.Key_6)
    assert window.progress_label.text() == "Image 1 of 8"
    _press(qtbot, window, Qt.Key.Key_2)
    _press(qtbot, window, Qt.Key.Key_5)
    _press(qtbot, window, Qt.Key.Key_Backspace)
    assert window.progress_label.text() == "Image 2 of 8"
    checked = [b for b in window.rating_bar.group.buttons() if b.isChecked()]
    assert [window.rating_bar.group.id(b) for b in checked] == [5]
    _press(qtbot, window, Qt.Key.Key_3)  # revise, then back to the first unanswered
    assert window.progress_label.text() == "Image 3 of 8"
    answers = load_session(window.session.path).answers
    assert [(a.rating, a.revised) for a in answers] == [(2, 0), (3, 1)]


def test_a_damaged_package_is_refused_by_name(qtbot, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda *a, **k: shown.append(a[2]))
    damaged = tmp_path / "broken.cxrstudy"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    assert open_reader_study(damaged, full_screen=False) is None
    assert "broken.cxrstudy" in shown[0] and "new copy" in shown[0]
