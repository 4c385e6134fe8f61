"""Screenshot of the Train tab watching a finished run (the CPU preset), under Xvfb.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/xvfb_train_screenshot.py \
        docs/screenshots/train_panel_cpu.png RUN_DIR IMAGES_DIR

The panel reads the run folder exactly as it does while a run goes on (log rows, the latest
sample grid), so a finished run shows what a user watching it saw at its end; the last grid
is also opened in the viewer. A very long status line is set too, to show that it elides
instead of pushing Stop out of view.
"""

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication

from cxrgan_desktop.gui.shell.app import create_application


def main() -> None:
    out, run, images = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    app = create_application(sys.argv[:1])
    from cxrgan_desktop.engine.training.config import load_config, total_images
    from cxrgan_desktop.gui.panels.train_monitor import RunMonitor
    from cxrgan_desktop.gui.shell.main_window import MainWindow

    window = MainWindow()
    window.show()
    panel = window.train_panel
    window.show_task(panel)
    panel.preset.setCurrentIndex(panel.preset.findData("tiny64"))
    panel.data_dir.setText(str(images))
    panel.run_dir.setText(str(run))
    panel.total_images = total_images(load_config("tiny64"))
    panel.monitor = RunMonitor(run)
    panel.status.setText(f"Finished: {run / 'final.safetensors'} (a long path elides here; "
                         "the whole text is in the tooltip)")

    def shoot() -> None:
        panel.poll()
        window.load_image_files([run / "samples" / "latest.png"])  # the grid, large
        QTimer.singleShot(1500, grab)

    def grab() -> None:
        QGuiApplication.primaryScreen().grabWindow(0).save(str(out))
        window.close()
        app.quit()

    QTimer.singleShot(3000, shoot)
    app.exec()


if __name__ == "__main__":
    main()
