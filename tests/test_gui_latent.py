"""The window's latent space (issue 24): Findings sliders, the probability plot, the
difference overlay, frame exports, morphs, projection from the context menu, and truncation
in the LCO panel, the window's export and the Findings tab (a truncated image slides at its
psi).

References are computed apart from the window: the engine's ``shift_path`` and
``Renderer`` on models and classifiers loaded anew, Pillow and pydicom reading the files back,
PSNR by its definition in numpy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from cxrgan_desktop.gui.panels.generate import GenerateRequest

FINDING_RANGE = 10.0
FRAMES = 9


def _png16(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int64)


def _stored(image: np.ndarray) -> np.ndarray:
    """round(65535 * pixel), clipped: the 16-bit value a [0, 1] image is shown and saved as."""
    return np.round(np.clip(np.asarray(image, np.float64), 0, 1) * 65535.0).astype(np.int64)


@pytest.fixture(scope="module")
def demo():
    """The bundled demo generator and classifier, loaded apart from the window."""
    from cxrgan_desktop.engine.checkpoints import load_generator
    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.classifier.installed import DEMO_CLASSIFIER, resolve_classifier
    from cxrgan_desktop.store import zoo

    model = load_generator(zoo.resolve_model(zoo.DEMO_MODEL))
    return model, load_classifier(resolve_classifier(DEMO_CLASSIFIER))


def _generate(qtbot, window, count: int = 2, seed: int = 5, truncation: float = 1.0):
    """Batches of one: frames are rendered alone, and oneDNN's last bits depend on the
    batch's size (see engine/interpolation.py), so only then is "exactly" exact."""
    with qtbot.waitSignal(window.generate.finished, timeout=60_000):
        window.generate.start(GenerateRequest(
            model=window.generate_panel.model_box.currentData(), count=count, seed=seed,
            device="cpu", batch_size=1, truncation=truncation))
    qtbot.waitUntil(lambda: not window.jobs.is_running(), timeout=10_000)
    qtbot.waitUntil(lambda: window.gallery.count() == count, timeout=10_000)
    return window.gallery.entries()


def _explore(qtbot, window, entry=None):
    window.findings_panel.frames.setValue(FRAMES)
    window.findings_panel.range_box.setValue(FINDING_RANGE)
    with qtbot.waitSignal(window.findings.prepared, timeout=60_000) as prepared:
        if entry is None:
            window.explore_findings()
        else:
            window.findings.explore(entry)
    return prepared.args[0]


@pytest.fixture
def explored(main_window, qtbot):
    """Two generated demo images; the Findings tab on the first, previews at half size."""
    window = main_window
    entries = _generate(qtbot, window)
    preview = window.findings_panel.preview_box
    preview.setCurrentIndex(preview.findData("half"))
    window.gallery.setCurrentRow(0)
    state = _explore(qtbot, window)
    assert state.subject.entry is entries[0]
    return window, entries, state


def _wait_render(qtbot, window, action):
    with qtbot.waitSignal(window.findings.rendered, timeout=30_000) as got:
        action()
    qtbot.waitUntil(lambda: not window.findings.renders.pending(), timeout=30_000)
    return got.args


def test_sliders_preview_release_plot_and_difference(explored, demo, qtbot):
    from cxrgan_desktop.engine.latent_shift import preview_model, shift_path
    from cxrgan_desktop.engine.render import Renderer

    window, entries, state = explored
    model, classifier = demo
    panel, findings = window.findings_panel, window.findings
    assert list(panel.sliders) == list(classifier.labels)  # one slider per finding
    assert state.subject.latent.tobytes() == entries[0].details["latent"].tobytes()
    # the start is the gallery image: the latent of seed 5 #0, rendered as generate wrote it
    assert np.array_equal(_stored(state.start), _png16(entries[0].path))
    finding = "Effusion" if "Effusion" in panel.sliders else classifier.labels[0]
    z0 = entries[0].details["latent"]
    reference = shift_path(model, classifier, finding, z0, [5.0])
    z = reference.frames[0].z

    slider = panel.sliders[finding].slider
    slider.setSliderDown(True)  # a drag: previews
    _, quick = _wait_render(qtbot, window, lambda: slider.setValue(50))
    assert quick and window.centre.currentWidget() is window.viewer
    small = Renderer(preview_model(model, 1)).render(z[None])[0, 0].numpy()
    expected = np.kron(small, np.ones((2, 2), np.float32))  # 32 px stage on the 64 px grid
    shown = window.viewer.image().astype(np.int64)
    assert shown.shape == (64, 64)
    assert np.abs(shown - _stored(expected)).max() <= 1  # float32 path differences only

    _, quick = _wait_render(qtbot, window, lambda: slider.setSliderDown(False))
    assert not quick
    full = window.viewer.image().astype(np.int64)
    assert np.abs(full - _stored(reference.frames[0].image)).max() <= 1
    assert np.abs(full - _stored(expected)).max() > 1  # the preview was not the full image

    # the plot: every finding's probability along the active finding's path
    qtbot.waitUntil(lambda: findings._curve_key() in findings.curves, timeout=60_000)
    lambdas = np.linspace(-FINDING_RANGE, FINDING_RANGE, FRAMES)
    path = shift_path(model, classifier, finding, z0, lambdas)
    assert set(panel.plot.curves) == set(classifier.labels)
    for k, label in enumerate(classifier.labels):
        x, y = panel.plot.curves[label].getData()
        np.testing.assert_allclose(x, lambdas, rtol=0, atol=1e-12)
        np.testing.assert_allclose(y, path.probabilities[:, k], rtol=1e-6, atol=1e-7)
    assert panel.plot.marker.value() == pytest.approx(5.0)

    # difference against the start: (now - start + 1) / 2 on screen
    panel.difference.setChecked(True)
    difference = (reference.frames[0].image.astype(np.float64) - state.start) + 1.0
    assert np.abs(window.viewer.image().astype(np.int64) - _stored(difference / 2)).max() <= 1
    assert window.viewer.units().name.startswith("difference")
    panel.difference.setChecked(False)

    # keyboard: Page Up moves one degree and renders full size at once
    slider.setFocus()
    _, quick = _wait_render(qtbot, window, lambda: qtbot.keyClick(slider, Qt.Key.Key_PageUp))
    assert not quick and panel.values()[finding] == pytest.approx(6.0)


def test_export_writes_the_frame_set(explored, demo, qtbot, tmp_path, monkeypatch):
    from cxrgan_desktop.engine.latent_shift import shift_path

    window, entries, _ = explored
    model, classifier = demo
    finding = classifier.labels[1]
    _wait_render(qtbot, window, lambda: window.findings_panel.sliders[finding].slider.setValue(20))
    out = tmp_path / "frames"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    with qtbot.waitSignal(window.findings.exported, timeout=60_000) as done:
        window.findings_panel.export_shift.click()
    qtbot.waitUntil(lambda: not window.jobs.is_running(), timeout=10_000)
    assert done.args[0].out_dir == out
    lambdas = np.linspace(-FINDING_RANGE, FINDING_RANGE, FRAMES)
    path = shift_path(model, classifier, finding, entries[0].details["latent"], lambdas)
    uids = set()
    for k, frame in enumerate(path.frames):
        png = _png16(out / f"frame_{k:03d}.png")
        assert np.array_equal(png, _stored(frame.image))
        ds = pydicom.dcmread(out / "dicom" / f"frame_{k:03d}.dcm")
        assert np.array_equal(ds.pixel_array.astype(np.int64), png)
        assert "SYNTHETIC" in str(ds.ImageComments).upper() and int(ds.InstanceNumber) == k + 1
        uids.add(ds.SeriesInstanceUID)
    assert len(uids) == 1  # one series
    # frame at lambda 0 is the plain generate, exactly
    assert np.array_equal(_png16(out / f"frame_{FRAMES // 2:03d}.png"), _png16(entries[0].path))
    record = json.loads((out / "path.json").read_text())
    assert record["synthetic"] is True and record["finding"] == finding
    assert record["start"]["seed"] == 5 and record["start"]["index"] == 0
    with Image.open(out / "animation.gif") as gif:
        assert gif.n_frames >= 2


def test_morph_ends_are_the_two_images_exactly(explored, qtbot, tmp_path, monkeypatch):
    window, entries, _ = explored
    panel = window.findings_panel
    with qtbot.waitSignal(window.findings.curveReady, timeout=60_000) as ready:
        window.findings.morph_to(entries[1])
    assert ready.args[0].kind == "interpolation"
    assert panel.morph_slider.maximum() == FRAMES - 1
    _wait_render(qtbot, window, lambda: panel.morph_slider.setValue(FRAMES - 1))
    assert np.array_equal(window.viewer.image().astype(np.int64), _png16(entries[1].path))
    _wait_render(qtbot, window, lambda: panel.morph_slider.setValue(0))
    assert np.array_equal(window.viewer.image().astype(np.int64), _png16(entries[0].path))
    out = tmp_path / "morph"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    with qtbot.waitSignal(window.findings.exported, timeout=60_000):
        panel.export_morph.click()
    qtbot.waitUntil(lambda: not window.jobs.is_running(), timeout=10_000)
    assert np.array_equal(_png16(out / f"frame_{FRAMES - 1:03d}.png"), _png16(entries[1].path))
    record = json.loads((out / "path.json").read_text())
    assert record["kind"] == "interpolation" and record["end"]["index"] == 1


def test_projection_from_the_context_menu(main_window, demo, qtbot, tmp_path, dialogs):
    from cxrgan_desktop.engine.render import Renderer
    from cxrgan_desktop.gui.panels.findings_menu import EXPLORE, FIND, latent_menu
    from cxrgan_desktop.tasks.export import export_items
    from cxrgan_desktop.tasks.project import IMAGE_NAMES

    window = main_window
    model, _ = demo
    generated = _generate(qtbot, window, count=1, seed=9)[0]
    real = tmp_path / "patient.png"  # stands in for an opened radiograph
    shutil.copy(generated.path, real)
    window.load_image_files([real])
    qtbot.waitUntil(lambda: window.gallery.count() == 2 and not window.jobs.is_running(),
                    timeout=20_000)
    opened = window.gallery.entries()[1]
    actions = {a.text(): a for a in latent_menu(window, opened).actions()}
    assert actions[FIND].isEnabled() and not actions[EXPLORE].isEnabled()
    assert not {a.text(): a for a in latent_menu(window, generated).actions()}[FIND].isEnabled()
    window.findings_panel.restarts.setValue(1)
    window.findings_panel.steps.setValue(4)
    with qtbot.waitSignal(window.findings.prepared, timeout=120_000) as prepared, \
            qtbot.waitSignal(window.projection.finished, timeout=120_000) as finished:
        actions[FIND].trigger()
    done, entry = finished.args
    assert window.centre.currentWidget() is window.projection_pair
    folder = done.result.out_dir
    original = _png16(folder / IMAGE_NAMES["original"]).astype(np.float64) / 65535
    reconstruction = _png16(folder / IMAGE_NAMES["reconstruction"])
    psnr = 10 * np.log10(1 / np.mean((reconstruction / 65535 - original) ** 2))
    title = window.projection_pair.titles[2].text()
    assert f"PSNR {psnr:.2f} dB" in title and "SSIM" in title
    assert entry.title == "projection of patient.png, synthetic, derived"
    assert window.gallery.entries()[-1] is entry
    # its latent re-renders the reconstruction, and the sliders start from it
    rendered = Renderer(model).render(np.asarray(entry.details["latent"])[None])[0, 0].numpy()
    assert np.array_equal(_stored(rendered), reconstruction)
    assert prepared.args[0].subject.entry is entry
    # exported from the gallery, it says it is synthetic and derived from the radiograph
    from cxrgan_desktop.core.fileio import sha256_file
    from cxrgan_desktop.gui.shell.export_controller import export_formats, export_item
    from cxrgan_desktop.imaging.windowing import unit_window

    assert "dicom" in export_formats([entry])
    export_items([export_item(entry)], tmp_path / "out", "png16", unit_window())
    sidecar = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert sidecar["synthetic"] is True
    assert sidecar["image"]["derived_from"]["projection_of"] == sha256_file(real)
    assert not [d for d in dialogs if d[0] == "critical"]


def test_lco_truncation_reaches_the_task(main_window, qtbot):
    window = main_window
    panel = window.lco_panel
    assert panel.classifier_box.currentData()
    panel.truncation.setValue(0.5)
    for name in panel.choices:
        panel.set_choice(name, "any")
    panel.set_choice(next(iter(panel.choices)), "present")
    panel.count.setValue(1)
    panel.steps.setValue(2)
    panel.restarts.setValue(0)
    panel.batch_size.setValue(1)
    panel.threshold.setValue(0.01)
    with qtbot.waitSignal(panel.lcoRequested, timeout=5_000) as asked:
        panel.request_lco()
    assert asked.args[0].truncation == 0.5
    qtbot.waitUntil(lambda: window.jobs.runner is not None and not window.jobs.is_running(),
                    timeout=120_000)
    from cxrgan_desktop.core import paths

    archives = list((paths.data_dir() / "sessions").glob("*-lco-seed*/archive.json"))
    assert len(archives) == 1
    assert json.loads(archives[0].read_text())["truncation"] == 0.5
    assert window.settings.lco.truncation == 0.5  # remembered


def test_exports_of_truncated_images_name_psi(main_window, qtbot, tmp_path, monkeypatch):
    from cxrgan_desktop.tasks.export import EXPORT_FORMATS

    window = main_window
    entries = _generate(qtbot, window, count=1, seed=2, truncation=0.5)
    assert entries[0].details["truncation"] == 0.5
    window.gallery.selectAll()
    for image_format in ("png16", "dicom"):
        out = tmp_path / image_format
        monkeypatch.setattr("PySide6.QtWidgets.QInputDialog.getItem",
                            lambda *a, f=image_format, **k: (EXPORT_FORMATS[f], True))
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, o=out, **k: str(o))
        with qtbot.waitSignal(window.exporter.finished, timeout=30_000):
            window.export_selected()
        qtbot.waitUntil(lambda: not window.jobs.is_running(), timeout=10_000)
    sidecar = json.loads((tmp_path / "png16" / "seed2_00000.json").read_text())
    assert sidecar["image"]["truncation"] == 0.5
    assert "truncation psi 0.5" in sidecar["description"]
    ds = pydicom.dcmread(tmp_path / "dicom" / "seed2_00000.dcm")
    assert "truncation psi 0.5" in str(ds.ImageComments)


def test_a_truncated_image_slides_morphs_and_exports_at_its_psi(main_window, demo, qtbot,
                                                                 tmp_path, monkeypatch):
    """Generated at psi 0.5, the image's sliders start from that very image; the preview,
    the full render, the plot, the exported frames and the morph are those of the engine
    at psi 0.5 (shift_path, Renderer and interpolation_path on the model loaded anew)."""
    from cxrgan_desktop.engine.interpolation import interpolation_path
    from cxrgan_desktop.engine.latent_shift import preview_model, shift_path
    from cxrgan_desktop.engine.render import Renderer

    window = main_window
    model, classifier = demo
    psi = 0.5
    entries = _generate(qtbot, window, count=2, seed=3, truncation=psi)
    assert [e.details["truncation"] for e in entries] == [psi, psi]
    preview = window.findings_panel.preview_box
    preview.setCurrentIndex(preview.findData("half"))
    window.gallery.setCurrentRow(0)
    state = _explore(qtbot, window)
    assert state.subject.truncation == psi
    assert np.array_equal(_stored(state.start), _png16(entries[0].path))  # the gallery image
    subject = window.findings_panel.subject.text()
    assert "psi 0.5" in subject and "psi 1" not in subject and "untruncated" not in subject

    finding = classifier.labels[1]
    z0 = entries[0].details["latent"]
    reference = shift_path(model, classifier, finding, z0, [5.0], truncation=psi)
    z = reference.frames[0].z
    slider = window.findings_panel.sliders[finding].slider
    slider.setSliderDown(True)
    _, quick = _wait_render(qtbot, window, lambda: slider.setValue(50))
    assert quick
    small = Renderer(preview_model(model, 1), truncation=psi).render(z[None])[0, 0].numpy()
    expected = np.kron(small, np.ones((2, 2), np.float32))
    assert np.abs(window.viewer.image().astype(np.int64) - _stored(expected)).max() <= 1
    _, quick = _wait_render(qtbot, window, lambda: slider.setSliderDown(False))
    assert not quick
    full = window.viewer.image().astype(np.int64)
    assert np.abs(full - _stored(reference.frames[0].image)).max() <= 1
    untruncated = shift_path(model, classifier, finding, z0, [5.0]).frames[0].image
    assert np.abs(full - _stored(untruncated)).max() > 1  # psi reached the sliders

    qtbot.waitUntil(lambda: window.findings._curve_key() in window.findings.curves,
                    timeout=60_000)
    lambdas = np.linspace(-FINDING_RANGE, FINDING_RANGE, FRAMES)
    path = shift_path(model, classifier, finding, z0, lambdas, truncation=psi)
    for k, label in enumerate(classifier.labels):
        _, y = window.findings_panel.plot.curves[label].getData()
        np.testing.assert_allclose(y, path.probabilities[:, k], rtol=1e-6, atol=1e-7)

    out = tmp_path / "frames"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    with qtbot.waitSignal(window.findings.exported, timeout=60_000):
        window.findings_panel.export_shift.click()
    qtbot.waitUntil(lambda: not window.jobs.is_running(), timeout=10_000)
    for k, frame in enumerate(path.frames):
        assert np.array_equal(_png16(out / f"frame_{k:03d}.png"), _stored(frame.image))
        ds = pydicom.dcmread(out / "dicom" / f"frame_{k:03d}.dcm")
        assert "truncation psi 0.5" in str(ds.ImageComments)
    assert np.array_equal(_png16(out / f"frame_{FRAMES // 2:03d}.png"), _png16(entries[0].path))
    record = json.loads((out / "path.json").read_text())
    assert record["truncation"]["psi"] == psi
    assert "psi 1" not in json.dumps(record["start"])

    with qtbot.waitSignal(window.findings.curveReady, timeout=60_000) as ready:
        window.findings.morph_to(entries[1])
    morph = ready.args[0]
    assert morph.truncation == psi
    reference_morph = interpolation_path(model, z0, entries[1].details["latent"], FRAMES,
                                         truncation=psi)
    assert np.array_equal(morph.images, reference_morph.images)
    _wait_render(qtbot, window, lambda: window.findings_panel.morph_slider.setValue(FRAMES - 1))
    assert np.array_equal(window.viewer.image().astype(np.int64), _png16(entries[1].path))


def test_an_opened_image_has_no_sliders(main_window, qtbot, tmp_path):
    from cxrgan_desktop.imaging.png16 import write_png16

    window = main_window
    write_png16(tmp_path / "x.png", np.full((16, 16), 0.5, np.float32))
    window.load_image_files([tmp_path / "x.png"])
    qtbot.waitUntil(lambda: window.gallery.count() == 1 and not window.jobs.is_running(),
                    timeout=20_000)
    window.gallery.setCurrentRow(0)
    assert not window.findings.explore(window.gallery.current_entry())
    assert "Find in latent space" in window.findings_panel.subject.text()
    assert not window.findings_panel.sliders_box.isEnabled()


def test_the_menu_items_and_their_shortcuts(main_window):
    from PySide6.QtGui import QAction

    actions = {a.text(): a for a in main_window.findChildren(QAction)}
    assert actions["E&xplore findings…"].shortcut().toString() == "Ctrl+Shift+X"
    assert actions["Find in &latent space…"].shortcut().toString() == "Ctrl+Shift+P"
    shortcuts = [a.shortcut().toString() for a in actions.values() if not a.shortcut().isEmpty()]
    assert len(shortcuts) == len(set(shortcuts))  # no key does two things
    sheet = (Path(__file__).parents[1] / "resources" / "help" / "shortcuts.tsv").read_text()
    keys = [line.split("\t")[0] for line in sheet.splitlines() if not line.startswith("#")]
    assert "Ctrl+Shift+X" in keys and "Ctrl+Shift+P" in keys
