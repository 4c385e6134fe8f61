"""Guards the PySide6 pin: some releases drop references to None/True on every call or emit
(6.12.0 on Python 3.11 aborted the interpreter after about a thousand signal emits)."""

import subprocess
import sys
import textwrap


def test_qt_calls_do_not_leak_singleton_references():
    code = textwrap.dedent("""
        import sys
        from PySide6.QtCore import QObject, Signal
        from PySide6.QtWidgets import QApplication, QLabel
        app = QApplication([])
        class Emitter(QObject):
            fired = Signal(bool)
        emitter, label = Emitter(), QLabel()
        emitter.fired.connect(lambda value: None)
        before = sys.getrefcount(True), sys.getrefcount(None)
        for _ in range(300):
            emitter.fired.emit(True)
            label.setText("x")
        after = sys.getrefcount(True), sys.getrefcount(None)
        print(after[0] - before[0], after[1] - before[1])
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
                         timeout=60)
    assert run.returncode == 0, run.stderr[-1500:]
    true_delta, none_delta = (int(v) for v in run.stdout.split())
    assert abs(true_delta) < 50 and abs(none_delta) < 50, (
        f"PySide6 leaks references: True {true_delta}, None {none_delta} per 300 calls")
