"""The image viewer widget: window/level by drag and fields, presets, invert, view, hover,
compare. Offscreen; every top-level widget goes to qtbot; waits are on signals."""


import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from cxrgan_desktop.gui.viewer.viewer import CompareView, ViewerPreferences
from cxrgan_desktop.imaging import display
from cxrgan_desktop.imaging.windowing import Window, apply_window, unit_window

HEIGHT, WIDTH = 120, 160  # not square: catches a transposed image


def make_image():
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    return ((rows * WIDTH + cols) / (HEIGHT * WIDTH - 1)).astype(np.float32)


@pytest.fixture(autouse=True)
def every_mouse_move_delivered():
    """pyqtgraph drops scene mouse moves closer than 1/mouseRateLimit s apart (a throttle
    that suits a hand, not a test sending events microseconds apart)."""
    import pyqtgraph as pg

    limit = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", -1)
    yield
    pg.setConfigOption("mouseRateLimit", limit)


@pytest.fixture
def viewer(qtbot, shown_viewer):
    widget = shown_viewer
    with qtbot.waitSignal(widget.imageChanged):
        widget.set_image(make_image())
    return widget


def viewport_point(viewer, x, y):
    """The viewport position of image coordinates (x, y) (continuous, pixel corners at ints)."""
    scene = viewer.view_box.mapViewToScene(QPointF(x, y))
    return viewer.graphics_view.mapFromScene(scene)


def send_mouse(viewer, kind, pos, button=Qt.MouseButton.NoButton,
               buttons=Qt.MouseButton.NoButton, modifier=Qt.KeyboardModifier.NoModifier):
    """Deliver one mouse event to the viewport, synchronously (QTest's moves go through the
    window system queue, where Qt compresses them, and presses in quick succession become
    double clicks)."""
    viewport = viewer.graphics_view.viewport()
    local = QPointF(pos)
    event = QMouseEvent(kind, local, QPointF(viewport.mapToGlobal(pos)), button, buttons,
                        modifier)
    QApplication.sendEvent(viewport, event)


def drag(viewer, delta, button=Qt.MouseButton.LeftButton,
         modifier=Qt.KeyboardModifier.NoModifier):
    """Press at the image centre, move there in five steps, release."""
    start = viewport_point(viewer, WIDTH / 2, HEIGHT / 2)
    send_mouse(viewer, QEvent.Type.MouseButtonPress, start, button, button, modifier)
    for step in range(1, 6):
        pos = start + QPoint(delta[0] * step // 5, delta[1] * step // 5)
        send_mouse(viewer, QEvent.Type.MouseMove, pos, buttons=button, modifier=modifier)
    send_mouse(viewer, QEvent.Type.MouseButtonRelease, start + QPoint(*delta), button,
               modifier=modifier)


def test_image_shown_row_major_top_down_and_equal_to_apply_window(viewer):
    assert viewer.image_item.image.shape == (HEIGHT, WIDTH)
    assert viewer.view_box.yInverted() and viewer.view_box.state["aspectLocked"] == 1.0
    top = viewport_point(viewer, 0, 0)
    bottom = viewport_point(viewer, 0, HEIGHT)
    assert top.y() < bottom.y()  # row 0 at the top
    viewer.set_window(Window(9000, 4001))
    shown = viewer.displayed_bytes()
    stored = viewer.image().astype(np.float64)
    expected = np.rint(apply_window(stored, Window(9000, 4001), 0, 255)).astype(np.uint8)
    np.testing.assert_array_equal(shown, expected)
    np.testing.assert_array_equal(viewer.image_item.image, shown)


def test_screen_pixels_are_the_display_bytes_at_one_to_one(viewer):
    viewer.set_window(Window(30000, 40001))
    viewer.one_to_one()
    shown = viewer.displayed_bytes()
    frame = viewer.graphics_view.viewport().grab().toImage()
    for x, y in [(3, 4), (80, 60), (150, 110)]:
        point = viewport_point(viewer, x + 0.5, y + 0.5)
        assert frame.pixelColor(point).red() == shown[y, x]


def test_left_drag_horizontal_sets_width_vertical_sets_level(viewer, qtbot):
    start = viewer.window()
    with qtbot.waitSignal(viewer.windowChanged):
        drag(viewer, (80, 0))
    assert viewer.window().width > start.width
    assert viewer.window().center == pytest.approx(start.center)
    middle = viewer.window()
    drag(viewer, (0, 60))
    assert viewer.window().center > middle.center
    assert viewer.window().width == pytest.approx(middle.width)
    drag(viewer, (-120, -90))  # back the other way
    assert viewer.window().width < middle.width
    assert viewer.window().center < middle.center


def test_drag_directions_and_button_are_preferences(viewer):
    mapping = display.DragMapping(width_sign=-1, level_sign=-1)
    viewer.set_preferences(ViewerPreferences(window_button="right", drag=mapping))
    start = viewer.window()
    drag(viewer, (80, 60), button=Qt.MouseButton.RightButton)
    assert viewer.window().width < start.width and viewer.window().center < start.center
    windowed = viewer.window()
    before = viewer.view_box.viewRect()
    drag(viewer, (40, 30))  # left is no longer the window button: it pans
    assert viewer.window() == windowed
    assert viewer.view_box.viewRect().center() != before.center()


def test_pan_with_middle_button_or_modifier_keeps_the_window(viewer):
    start = viewer.window()
    center = viewer.view_box.viewRect().center()
    drag(viewer, (50, 0), button=Qt.MouseButton.MiddleButton)
    moved = viewer.view_box.viewRect().center()
    assert moved.x() < center.x()  # dragging the image right shows what lies to its left
    drag(viewer, (0, 40), modifier=Qt.KeyboardModifier.ControlModifier)
    assert viewer.view_box.viewRect().center().y() < moved.y()
    assert viewer.window() == start


def test_drag_renders_are_coalesced(viewer, qtbot, monkeypatch):
    renders = []
    original = viewer.image_item.setImage
    monkeypatch.setattr(viewer.image_item, "setImage",
                        lambda *a, **k: (renders.append(1), original(*a, **k)))
    for step in range(50):
        viewer.set_window(Window(20000 + step, 9000))
    assert renders == []  # nothing rendered yet: only the newest request will be
    qtbot.waitUntil(lambda: len(renders) == 1)
    assert viewer.image_item.image[0, 0] == display.display_bytes(
        viewer.image(), Window(20049, 9000))[0, 0]


def test_fields_follow_the_window_and_edits_set_it(viewer, qtbot):
    emitted = []
    viewer.windowChanged.connect(lambda c, w: emitted.append((c, w)))
    viewer.set_window(Window(12345.5, 6789))
    assert viewer.controls.center.value() == pytest.approx(12345.5)
    assert viewer.controls.width.value() == pytest.approx(6789)
    assert viewer.histogram.region.getRegion() == pytest.approx(
        (Window(12345.5, 6789).low, Window(12345.5, 6789).high))
    assert emitted == [(12345.5, 6789)]  # once: showing it in the fields sends nothing back
    with qtbot.waitSignal(viewer.windowChanged):
        viewer.controls.width.setValue(2000)  # as a user edit does
    assert viewer.window() == Window(12345.5, 2000)
    viewer.controls.center.setValue(40000)
    assert viewer.window() == Window(40000, 2000)
    assert len(emitted) == 3
    viewer.histogram.region.setRegion((1000, 3000))  # dragging the histogram band
    assert viewer.window().low == pytest.approx(1000) and viewer.window().high == 3000


def test_presets_set_the_expected_windows(viewer):
    assert display.FILE_PRESET not in viewer.preset_names()
    for name, expected in (("Bone", display.RADIOGRAPH_PRESETS["Bone"].window(viewer.image())),
                           (display.AUTO_PRESET, display.auto_window(viewer.image()))):
        viewer.apply_preset(name)  # rounded to whole 16-bit values for the fields
        assert (viewer.window().low, viewer.window().high) == pytest.approx(
            (expected.low, expected.high), abs=1)
    viewer.set_image(make_image(), file_window=Window(5000, 2000))
    assert viewer.window() == Window(5000, 2000)  # a new image opens in its own window
    assert viewer.preset_names()[0] == display.FILE_PRESET
    combo = viewer.controls.presets
    combo.activated.emit(combo.findText(display.FULL_PRESET))  # as a menu choice does
    assert viewer.window() == unit_window()
    viewer.apply_preset(display.FILE_PRESET)
    assert viewer.window() == Window(5000, 2000)
    viewer.set_inverted(True)
    viewer.zoom_by(3)
    viewer.reset()
    assert viewer.window() == Window(5000, 2000) and not viewer.is_inverted()


def test_invert_flips_the_displayed_bytes(viewer, qtbot):
    viewer.set_window(Window(20000, 30001))
    normal = viewer.displayed_bytes().copy()
    with qtbot.waitSignal(viewer.invertedChanged):
        viewer.controls.invert.setChecked(True)
    assert viewer.is_inverted()
    np.testing.assert_array_equal(viewer.displayed_bytes(), 255 - normal)
    assert "inverted" in viewer.overlay.text()


def test_fit_one_to_one_and_zoom_set_the_view_ranges(viewer):
    viewer.fit()
    (x0, x1), (y0, y1) = viewer.view_box.viewRange()
    assert x0 <= 1e-6 and x1 >= WIDTH - 1e-6 and y0 <= 1e-6 and y1 >= HEIGHT - 1e-6
    assert min(x1 - x0 - WIDTH, y1 - y0 - HEIGHT) == pytest.approx(0, abs=1e-6)  # tight
    assert (x0 + x1) / 2 == pytest.approx(WIDTH / 2) and (y0 + y1) / 2 == pytest.approx(HEIGHT / 2)
    viewer.one_to_one()
    ratio = viewer.graphics_view.devicePixelRatioF()
    (x0, x1), (y0, y1) = viewer.view_box.viewRange()
    assert x1 - x0 == pytest.approx(viewer.view_box.width() * ratio, rel=1e-3)
    assert y1 - y0 == pytest.approx(viewer.view_box.height() * ratio, rel=1e-3)
    assert viewer.zoom() == pytest.approx(1.0, rel=1e-3)
    viewer.zoom_by(2)
    assert viewer.zoom() == pytest.approx(2.0, rel=1e-3)
    with pytest.raises(ValueError):
        viewer.zoom_by(0)


def test_wheel_zooms_about_the_cursor(viewer):
    viewport = viewer.graphics_view.viewport()
    target = viewport_point(viewer, 40.0, 30.0)
    before = viewer.zoom()
    event = QWheelEvent(QPointF(target), QPointF(viewport.mapToGlobal(target)), QPoint(0, 0),
                        QPoint(0, 120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)
    assert viewer.zoom() > before
    under = viewer.view_box.mapSceneToView(viewer.graphics_view.mapToScene(target))
    assert under.x() == pytest.approx(40.0, abs=0.5) and under.y() == pytest.approx(30.0, abs=0.5)


def test_pixel_hovered_reports_the_stored_value(viewer, qtbot):
    x, y = 37, 81
    with qtbot.waitSignal(viewer.pixelHovered) as hovered:
        send_mouse(viewer, QEvent.Type.MouseMove, viewport_point(viewer, x + 0.5, y + 0.5))
    expected = float(round(65535 * float(make_image()[y, x])))
    assert hovered.args == [x, y, expected]
    assert f"value {expected:.0f}" in viewer.overlay.text()
    viewer.zoom_by(0.5)  # leave margin around the image
    with qtbot.waitSignal(viewer.hoverLeft), qtbot.assertNotEmitted(viewer.pixelHovered):
        send_mouse(viewer, QEvent.Type.MouseMove, viewport_point(viewer, -5, -5))


def test_set_image_without_reset_keeps_window_and_view(viewer, qtbot):
    viewer.set_window(Window(7000, 3001))
    viewer.zoom_by(2)
    rect = viewer.view_box.viewRect()
    with qtbot.waitSignal(viewer.imageChanged):
        viewer.set_image(make_image()[::-1].copy(), reset_view=False)
    assert viewer.window() == Window(7000, 3001)
    assert viewer.view_box.viewRect() == rect


def test_compare_view_links_zoom_window_and_invert(qtbot):
    compare = CompareView()
    qtbot.addWidget(compare)
    compare.resize(1000, 600)
    compare.show()
    qtbot.waitExposed(compare)
    compare.set_images(make_image(), make_image()[::-1].copy())
    left, right = compare.left, compare.right
    left.zoom_by(2.5)
    assert np.allclose(right.view_box.viewRange(), left.view_box.viewRange())
    counts = {"left": 0, "right": 0}
    left.windowChanged.connect(lambda *_: counts.__setitem__("left", counts["left"] + 1))
    right.windowChanged.connect(lambda *_: counts.__setitem__("right", counts["right"] + 1))
    left.set_window(Window(1000, 501))
    assert right.window() == Window(1000, 501)
    right.apply_preset("Lung")
    assert left.window() == right.window() != Window(1000, 501)
    assert counts == {"left": 2, "right": 2}  # each change once per side: no echo loop
    right.set_inverted(True)
    assert left.is_inverted()
    np.testing.assert_array_equal(left.displayed_bytes()[::-1], right.displayed_bytes())


def test_thumbnails_of_small_images_fill_the_strip_with_sharp_pixels(qtbot):
    from cxrgan_desktop.gui.viewer.gallery import THUMBNAIL, thumbnail_pixmap

    tiny = np.zeros((16, 16), np.float32)
    tiny[:, 8:] = 1.0  # left half black, right half white
    pixmap = thumbnail_pixmap(tiny)
    assert pixmap.width() == pixmap.height() == THUMBNAIL
    image = pixmap.toImage()
    row = [image.pixelColor(x, THUMBNAIL // 2).value() for x in range(THUMBNAIL)]
    assert row == [0] * (THUMBNAIL // 2) + [255] * (THUMBNAIL // 2)  # no blur at the edge
    wide = thumbnail_pixmap(np.zeros((512, 1024), np.float32))
    assert wide.width() <= THUMBNAIL and wide.height() <= THUMBNAIL


def test_a_window_change_paints_the_image_once_with_its_overlay(viewer, qtbot):
    """The overlay is drawn over the image: updated before the new bytes, it made the view
    paint the image twice per window change (once still showing the old window)."""
    from PySide6.QtWidgets import QApplication

    qtbot.waitUntil(lambda: viewer.image_item.image is not None)
    QApplication.processEvents()
    painted: list[str] = []
    original = viewer.image_item.paint

    def paint(*args):
        painted.append(viewer.overlay.text())
        return original(*args)

    viewer.image_item.paint = paint  # an instance attribute overrides the virtual
    viewer.set_window(Window(20000.5, 3001))
    qtbot.waitUntil(lambda: len(painted) > 0)
    for _ in range(5):  # anything the paint posted
        QApplication.processEvents()
    assert len(painted) == 1
    assert "W 3001  L 20000.5" in painted[0]


def test_the_overlay_shows_header_text_as_plain_text(viewer):
    """A caption from a file (a DICOM header, a file name) that looks like markup is shown
    as written, never rendered as rich text (which could load a local file)."""
    from cxrgan_desktop.imaging.display import DisplayInfo

    crafted = "<img src=/etc/hostname><b>bold</b>"
    viewer.show_image(np.zeros((8, 8), np.float32), DisplayInfo(caption=(crafted,)))
    assert viewer.overlay.textFormat() == Qt.TextFormat.PlainText
    assert crafted in viewer.overlay.text()
