"""``cxrgan-desktop --self-test OUT.png``: start the real window, render one image from a
model in the worker thread, save it, and exit.

A check that an installed or frozen application (the PyInstaller bundle) has everything it
needs at run time: Qt and its platform plugin, the window, torch, the model files found by
package-relative paths, and the PNG writer. Exit status 0 only when the image was written.
"""

from __future__ import annotations

from pathlib import Path


def render_one_job(model_name: str | None, out: Path):
    """The job: load ``model_name`` (None: the default model) and write image 0 of seed 0."""

    def job(progress, cancel):
        from cxrgan_desktop.engine.checkpoints import load_generator
        from cxrgan_desktop.engine.render import Renderer
        from cxrgan_desktop.imaging.png16 import write_png16
        from cxrgan_desktop.store import zoo

        path = zoo.resolve_model(model_name) if model_name else zoo.default_model()
        if path is None:
            raise zoo.ModelNotFoundError("no model is installed or bundled; pass --model FILE")
        progress(0.2, f"loading {path.name}")
        model = load_generator(path)
        image = next(Renderer(model, "cpu").render_seeded(0, 1, 1, cancel))[0, 0].numpy()
        write_png16(out, image)
        progress(1.0, f"wrote {out}")
        return {"model": model.name, "resolution": model.resolution, "out": str(out)}

    return job


def run_self_test(app, out: Path, model_name: str | None) -> int:
    """Show the main window, render in the background, then quit with 0 (written) or 1."""
    import sys

    from PySide6.QtCore import QTimer

    from cxrgan_desktop.gui.jobs.worker import JobRunner
    from cxrgan_desktop.gui.shell.main_window import MainWindow

    window = MainWindow()
    window.show()
    outcome = {"code": 1}
    runner = JobRunner(render_one_job(model_name, out.resolve()), "self-test", window)

    def succeeded(result) -> None:
        outcome["code"] = 0
        print(f"self-test passed: {result['model']} ({result['resolution']} px) -> "
              f"{result['out']}")

    runner.succeeded.connect(succeeded)
    runner.failed.connect(lambda message: print(f"self-test FAILED: {message}",
                                                file=sys.stderr))
    runner.done.connect(window.close)
    runner.done.connect(app.quit)
    QTimer.singleShot(0, runner.start)
    app.exec()
    return outcome["code"]
