"""The viewer's display mapping (no Qt): window -> bytes, presets, drag mapping, histogram."""

import subprocess
import sys

import numpy as np
import pytest

from cxrgan_desktop.imaging import display
from cxrgan_desktop.imaging.png16 import to_uint16
from cxrgan_desktop.imaging.windowing import Window, apply_window, unit_window

WINDOWS = [Window(32768, 65536), Window(20000, 5001), Window(100.5, 2), Window(40000, 1),
           Window(-500, 3000), Window(70000, 20000), Window(12345.25, 777.5)]


@pytest.fixture
def stored():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 65536, size=(96, 80), dtype=np.uint16)
    image[0, :4] = [0, 1, 65534, 65535]
    return image


def reference_bytes(stored, window, inverted=False):
    """The specification, written directly: the project's VOI function rounded to 8 bits."""
    out = np.rint(apply_window(stored.astype(np.float64), window, 0.0, 255.0)).astype(np.uint8)
    return 255 - out if inverted else out


@pytest.mark.parametrize("window", WINDOWS)
def test_display_bytes_equal_apply_window_rounded(stored, window):
    shown = display.display_bytes(stored, window)
    assert shown.dtype == np.uint8 and shown.shape == stored.shape
    assert shown.flags.c_contiguous
    np.testing.assert_array_equal(shown, reference_bytes(stored, window))


@pytest.mark.parametrize("window", WINDOWS[:3])
def test_invert_is_255_minus_the_bytes(stored, window):
    normal = display.display_bytes(stored, window)
    inverted = display.display_bytes(stored, window, inverted=True)
    np.testing.assert_array_equal(inverted, 255 - normal)
    np.testing.assert_array_equal(inverted, reference_bytes(stored, window, inverted=True))


def test_full_range_window_is_the_identity_scaled_to_bytes():
    levels = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    shown = display.display_bytes(levels, unit_window())
    np.testing.assert_array_equal(shown, np.rint(levels / 65535 * 255).astype(np.uint8))
    assert shown[0, 0] == 0 and shown[-1, -1] == 255


def test_to_stored_is_the_16_bit_export_value_and_rejects_bad_input():
    pixels = np.array([[0.0, 0.5, 1.0], [np.nan, np.inf, -np.inf]], dtype=np.float32)
    stored = display.to_stored(pixels)
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored[:1], to_uint16(pixels[:1]))
    values = np.random.default_rng(3).uniform(-0.5, 1.5, (64, 64)).astype(np.float32)
    values[0, :4] = [0.5 / 65535, 1.5 / 65535, 2.5 / 65535, 65534.5 / 65535]  # ties
    np.testing.assert_array_equal(display.to_stored(values), to_uint16(values))
    np.testing.assert_array_equal(stored[1], [0, 65535, 0])
    with pytest.raises(ValueError, match="2-D"):
        display.to_stored(np.zeros((4, 4, 3)))
    with pytest.raises(TypeError):
        display.display_bytes(np.zeros((2, 2), np.float32), unit_window())


def test_presets():
    names = display.preset_names()
    assert display.FILE_PRESET not in names
    assert names[:2] == [display.FULL_PRESET, display.AUTO_PRESET]
    assert {"Lung", "Mediastinum", "Bone"} <= set(names)
    assert display.preset_names(True)[0] == display.FILE_PRESET
    own = (display.NamedWindow("DICOM default 1: LUNG", Window(-500, 1500)),)
    assert display.preset_names(own)[0] == "DICOM default 1: LUNG"

    file_window = Window(1234, 567)
    assert display.preset_window(display.FILE_PRESET, file_window=file_window) == file_window
    assert display.preset_window(display.FULL_PRESET) == unit_window()
    rng = np.random.default_rng(3)
    image = rng.integers(1000, 60000, size=(100, 120)).astype(np.uint16)
    assert display.preset_window(display.FULL_PRESET, image) == Window.from_bounds(
        float(image.min()), float(image.max()))
    # relative presets: numpy's percentiles of the central 60 % (rows 20-80, columns 24-96)
    central = image[20:80, 24:96]
    for name, preset in display.RADIOGRAPH_PRESETS.items():
        region = central if preset.central else image
        low, high = np.percentile(region, [preset.low, preset.high])
        window = display.preset_window(name, image)
        assert (window.low, window.high) == pytest.approx((low, high))
        assert 0 <= preset.low < preset.high <= 100

    # auto: 0.5 / 99.5 percentiles of a uniform ramp
    ramp = np.linspace(0, 60000, 200 * 200).reshape(200, 200).astype(np.uint16)
    auto = display.preset_window(display.AUTO_PRESET, ramp)
    assert auto.low == pytest.approx(300, abs=120) and auto.high == pytest.approx(59700, abs=120)

    with pytest.raises(ValueError, match="no window"):
        display.preset_window(display.FILE_PRESET)
    with pytest.raises(ValueError, match="needs it"):
        display.preset_window(display.AUTO_PRESET)
    with pytest.raises(ValueError, match="unknown"):
        display.preset_window("Brain")


def test_display_units_convert_windows_end_to_end():
    identity = display.DisplayUnits()
    assert identity.to_display(Window(12345.5, 6789)) == Window(12345.5, 6789)
    # MONOCHROME1-like: stored 0 (black) reads 29999, stored 65535 reads 0
    units = display.DisplayUnits.from_range(29999.0, 0.0, "modality units", decimals=0)
    assert units.value(0) == 29999 and units.value(65535) == pytest.approx(0)
    header = Window(15000, 30000)  # ramp 0 .. 29999: the whole stored range
    stored = units.to_stored(header)
    assert (stored.low, stored.high) == pytest.approx((0, 65535))
    back = units.to_display(stored)
    assert (back.center, back.width) == pytest.approx((15000, 30000))
    assert units.span() == pytest.approx((0, 29999))
    assert units.format(1234.4) == "1234" and units.format(-0.2) == "0"
    assert display.DisplayUnits(scale=0.01, decimals=2).format(1.5) == "1.5"
    with pytest.raises(ValueError):
        display.DisplayUnits(scale=0.0)


@pytest.mark.parametrize(("width_sign", "level_sign"), [(1, 1), (-1, 1), (1, -1), (-1, -1)])
def test_drag_mapping_is_monotonic_in_the_configured_directions(width_sign, level_sign):
    mapping = display.DragMapping(width_sign=width_sign, level_sign=level_sign)
    start = Window(30000, 8000)
    assert display.drag_window(start, 0, 0, mapping) == start
    steps = np.arange(-300, 301, 25)
    widths = [display.drag_window(start, dx, 0, mapping).width for dx in steps]
    centers = [display.drag_window(start, 0, dy, mapping).center for dy in steps]
    assert np.all(np.diff(widths) * width_sign > 0)  # strictly monotonic
    assert np.all(np.diff(centers) * level_sign > 0)
    # horizontal motion leaves the level alone, vertical motion the width
    assert display.drag_window(start, 120, 0, mapping).center == start.center
    assert display.drag_window(start, 0, 120, mapping).width == start.width
    # scale: pixels_per_doubling pixels double (or halve) the width
    assert display.drag_window(start, 200 * width_sign, 0, mapping).width == pytest.approx(16000)


def test_drag_mapping_clamps_and_validates():
    far = display.drag_window(Window(30000, 8000), 1e5, 1e6)
    assert far.width == display.MAX_WIDTH and far.center == display.MAX_CENTER
    narrow = display.drag_window(Window(30000, 8000), -1e5, -1e6)
    assert narrow.width == display.MIN_WIDTH and narrow.center == display.MIN_CENTER
    with pytest.raises(ValueError):
        display.DragMapping(width_sign=0)
    with pytest.raises(ValueError):
        display.DragMapping(pixels_per_doubling=0)


def test_histogram_known_counts():
    stored = np.array([[0, 255, 256], [65535, 65280, 1000]], dtype=np.uint16)
    edges, counts = display.histogram(stored, bins=256)
    assert edges.shape == (257,) and edges[0] == 0 and edges[-1] == 65536
    assert counts.sum() == stored.size
    assert counts[0] == 2 and counts[1] == 1 and counts[3] == 1 and counts[255] == 2
    np.testing.assert_array_equal(display.histogram(stored, bins=65536)[1][[0, 1000]], [1, 1])
    matches, _ = np.histogram(stored, bins=4, range=(0, 65536))
    np.testing.assert_array_equal(display.histogram(stored, bins=4)[1], matches)
    with pytest.raises(ValueError):
        display.histogram(stored, bins=100)


def test_display_module_imports_without_qt():
    code = ("import sys\n"
            "for name in ('PySide6', 'shiboken6', 'pyqtgraph'):\n"
            "    sys.modules[name] = None\n"
            "import cxrgan_desktop.imaging.display\n")
    subprocess.run([sys.executable, "-c", code], check=True)
