import json

import numpy as np
import pydicom
import pytest
from PIL import Image

from cxrgan_desktop.imaging.display import display_bytes, to_stored
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.imaging.windowing import Window
from cxrgan_desktop.tasks.export import ExportItem, export_items


@pytest.fixture
def items(tmp_path):
    rng = np.random.default_rng(0)
    synthetic, real = tmp_path / "gen.png", tmp_path / "real.png"
    write_png16(synthetic, rng.random((32, 24)).astype(np.float32))
    write_png16(real, rng.random((32, 24)).astype(np.float32))
    return (ExportItem(synthetic, "gen_0", "tiny", "a" * 64, seed=5, index=0),
            ExportItem(real, "real_scan"))


def test_png16_gets_sidecars_for_generated_images_only(items, tmp_path):
    out = export_items(items, tmp_path / "out", "png16", Window(30000, 20000)).written
    assert [p.name for p in out] == ["gen_0.png", "real_scan.png"]
    sidecar = json.loads((tmp_path / "out" / "gen_0.json").read_text())
    assert "tiny" in json.dumps(sidecar) and "a" * 64 in json.dumps(sidecar)
    assert not (tmp_path / "out" / "real_scan.json").exists()
    original = np.asarray(Image.open(items[1].source))
    np.testing.assert_array_equal(np.asarray(Image.open(out[1])), original)


def test_png8_is_the_window_on_screen(items, tmp_path):
    window = Window(20000, 9000)
    out = export_items(items, tmp_path / "out", "png8", window, inverted=True).written
    expected = display_bytes(np.asarray(Image.open(items[0].source)).astype(np.uint16),
                             window, inverted=True)
    saved = np.asarray(Image.open(out[0]))
    assert saved.dtype == np.uint8
    np.testing.assert_array_equal(saved, expected)
    assert to_stored(np.zeros((2, 2))).dtype == np.uint16


def test_dicom_carries_the_window_and_refuses_real_images(items, tmp_path):
    window = Window(21000.5, 12345)
    out = export_items(items[:1], tmp_path / "out", "dicom", window).written
    ds = pydicom.dcmread(out[0])
    assert float(ds.WindowCenter) == pytest.approx(21000.5) and float(ds.WindowWidth) == 12345
    assert ds.ConversionType == "SYN"
    with pytest.raises(ValueError, match="real images: real_scan"):
        export_items(items, tmp_path / "out2", "dicom", window)
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").iterdir())


def test_an_image_that_vanished_or_broke_is_listed_and_the_rest_exported(items, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(items[1].source.read_bytes()[:60])  # truncated since it was opened
    gone = ExportItem(tmp_path / "moved_away.png", "gone")
    result = export_items([gone, items[0], ExportItem(broken, "broken"), items[1]],
                          tmp_path / "out", "png16", Window(30000, 20000))
    assert [p.name for p in result.written] == ["gen_0.png", "real_scan.png"]
    assert [s.source.name for s in result.skipped] == ["moved_away.png", "broken.png"]
    assert all(s.reason for s in result.skipped)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["gen_0.json", "gen_0.png", "real_scan.png"]
