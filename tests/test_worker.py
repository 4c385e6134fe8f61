import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QTimer

from cxrgan_desktop.core.jobs import check_cancel
from cxrgan_desktop.gui.jobs.worker import JobRunner


def _slow_job(steps, delay):
    def job(progress, cancel):
        for i in range(steps):
            check_cancel(cancel)
            time.sleep(delay)
            progress((i + 1) / steps, f"{i + 1}/{steps}")
        return "result"

    return job


def test_event_loop_keeps_turning_during_a_job(qtbot):
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    runner = JobRunner(_slow_job(10, 0.05))
    progress = []
    runner.progress.connect(lambda f, m: progress.append((f, m)))
    with qtbot.waitSignal(runner.succeeded, timeout=10_000) as blocker:
        runner.start()
    timer.stop()
    assert blocker.args == ["result"]
    assert len(ticks) >= 10  # the GUI thread ran its timer throughout the 0.5 s job
    assert progress[-1] == (1.0, "10/10")
    runner.wait()


def test_cancel_stops_the_job(qtbot):
    runner = JobRunner(_slow_job(1000, 0.01))
    runner.progress.connect(lambda f, m: runner.cancel() if f > 0.01 else None)
    with qtbot.waitSignal(runner.cancelled, timeout=10_000):
        runner.start()
    assert runner.wait()
    assert not runner.is_running()


def test_failure_is_reported_not_raised(qtbot):
    def job(progress, cancel):
        raise ValueError("bad file x.pth")

    runner = JobRunner(job)
    with qtbot.waitSignal(runner.failed, timeout=10_000) as blocker:
        runner.start()
    assert blocker.args == ["bad file x.pth"]
    runner.wait()


def test_a_deliberate_error_is_one_log_line_and_a_bug_keeps_its_traceback(qtbot, caplog):
    """A failed download or a bad file says what happened; only an unexpected exception
    (a bug) is worth a traceback on the console."""
    from cxrgan_desktop.core.download import DownloadFailed

    def fails(error):
        def job(progress, cancel):
            raise error
        return job

    for error, traceback_expected in ((DownloadFailed("offline"), False),
                                      (OSError(28, "No space left on device"), False),
                                      (KeyError("bug"), True)):
        caplog.clear()
        runner = JobRunner(fails(error), "task")
        with qtbot.waitSignal(runner.failed, timeout=10_000):
            runner.start()
        runner.wait()
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "task failed" in logged
        assert ("Traceback" in logged) == traceback_expected, logged
