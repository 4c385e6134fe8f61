import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_windowing

from cxrgan_desktop.imaging.dicom_reader import voi_output_range
from cxrgan_desktop.imaging.windowing import Window, apply_window, percentile_window, unit_window
from tests.dicom_data import real_dicom


def test_linear_voi_function_known_values():
    # c = 100, w = 51: ramp from c - 0.5 - 25 = 74.5 to c - 0.5 + 25 = 124.5
    window = Window(100, 51)
    x = np.array([0, 74.5, 74.6, 99.5, 124.5, 124.6, 1000])
    out = apply_window(x, window)
    np.testing.assert_allclose(out, [0, 0, (0.1 / 50), 0.5, 1.0, 1.0, 1.0], atol=1e-6)
    assert window.low == 74.5 and window.high == 124.5


def test_output_range_and_width_one_threshold():
    out = apply_window(np.array([0.0, 99.5, 100.0]), Window(100, 1), -10, 10)
    np.testing.assert_array_equal(out, [-10, -10, 10])
    scaled = apply_window(np.array([99.5]), Window(100, 51), 0, 255)
    assert scaled[0] == pytest.approx(127.5)


def test_window_validation_and_helpers():
    with pytest.raises(ValueError):
        Window(0, 0.5)
    with pytest.raises(ValueError):
        Window(float("nan"), 10)
    bounds = Window.from_bounds(10, 20)
    assert bounds.low == pytest.approx(10) and bounds.high == pytest.approx(20)
    levels = np.arange(65536)
    np.testing.assert_allclose(apply_window(levels, unit_window()), levels / 65535, atol=1e-7)
    values = np.concatenate([np.zeros(3), np.linspace(100, 200, 994), np.full(3, 1e6)])
    window = percentile_window(values)
    assert 99 < window.low < 101 and 199 < window.high < 201


@pytest.mark.parametrize("name", ["RG1_UNCI.dcm", "RG3_UNCR.dcm", "693_UNCI.dcm", "MR2_UNCR.dcm",
                                  "MR-SIEMENS-DICOM-WithOverlays.dcm", "CT_small.dcm"])
def test_agrees_with_pydicom_windowing_on_real_files(name):
    ds = pydicom.dcmread(real_dicom(name))
    if "WindowCenter" not in ds:
        ds.WindowCenter, ds.WindowWidth = 40, 400  # CT_small has none: give it a soft-tissue one
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    theirs = apply_windowing(values, ds)
    center = ds["WindowCenter"].value
    width = ds["WindowWidth"].value
    center = float(center[0] if ds["WindowCenter"].VM > 1 else center)
    width = float(width[0] if ds["WindowWidth"].VM > 1 else width)
    y_min, y_max = voi_output_range(ds)
    ours = apply_window(values, Window(center, width), y_min, y_max)
    tolerance = 1e-6 * (y_max - y_min)  # ours is float32 output
    np.testing.assert_allclose(ours, theirs, atol=max(tolerance, 1e-3))
    assert np.mean((theirs > y_min) & (theirs < y_max)) > 0  # the ramp is exercised
