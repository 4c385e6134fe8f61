import csv
import shutil
import threading

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_windowing

from cxrgan_desktop import cli
from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.imaging import dicom_reader
from cxrgan_desktop.imaging.dicom_reader import voi_output_range
from cxrgan_desktop.imaging.png16 import read_png16
from cxrgan_desktop.imaging.readers import ImageReadError, Skipped, read_image, scan_images
from cxrgan_desktop.tasks.convert import convert_images, output_name
from tests.dicom_data import real_dicom, require_decoder


def test_monochrome1_radiograph_is_windowed_and_inverted():
    path = real_dicom("RG1_UNCI.dcm")
    image = read_image(path)
    ds = pydicom.dcmread(path)
    y_min, y_max = voi_output_range(ds)
    expected = 1 - (apply_windowing(apply_modality_lut(ds.pixel_array, ds), ds) - y_min) / (
        y_max - y_min)
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (1955, 1841)
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert image.photometric == "MONOCHROME1" and "inverted" in image.normalisation
    assert "window c=15000 w=30000" in image.normalisation
    assert image.sop_instance_uid == ds.SOPInstanceUID and image.modality == "CR"


@pytest.mark.parametrize("plain,compressed", [
    ("RG1_UNCR.dcm", "RG1_J2KR.dcm"), ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("693_UNCR.dcm", "693_J2KR.dcm")])
def test_lossless_compressed_files_decode_to_the_same_pixels(plain, compressed):
    require_decoder(compressed)
    a, b = read_image(real_dicom(plain)), read_image(real_dicom(compressed))
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.normalisation == b.normalisation


def test_voi_lut_sequence_and_modality_lut_sequence():
    voi = read_image(real_dicom("vlut_04.dcm"))
    assert voi.normalisation.startswith("VOI LUT Sequence")
    assert voi.pixels.min() >= 0 and voi.pixels.max() <= 1 and voi.pixels.std() > 0.05
    mlut = read_image(real_dicom("mlut_18.dcm"))
    assert mlut.pixels.std() > 0.05 and 0 <= mlut.pixels.min() <= mlut.pixels.max() <= 1


def test_first_of_several_windows_is_used():
    image = read_image(real_dicom("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    assert "(first of 2)" in image.normalisation
    assert any("MR" in w for w in image.warnings)


def test_multiframe_reads_first_frame_with_warning():
    path = real_dicom("emri_small.dcm")
    image = read_image(path)
    ds = pydicom.dcmread(path)
    assert image.pixels.shape == ds.pixel_array.shape[1:]
    assert any("first" in w and "frames" in w for w in image.warnings)


def test_file_without_window_uses_percentiles():
    image = read_image(real_dicom("CT_small.dcm"))
    assert image.normalisation.startswith("percentiles")


def test_dicom_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(real_dicom("RG3_UNCR.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(ImageReadError, match=r"nopixels.dcm: a DICOM object without pixel data"):
        read_image(tmp_path / "nopixels.dcm")


@pytest.mark.parametrize("fraction", [0.5, 0.01])
def test_truncated_dicom(tmp_path, fraction):
    data = real_dicom("RG3_UNCR.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ImageReadError, match="cut.dcm"):
        read_image(path)


def test_text_file_named_dcm(tmp_path):
    path = tmp_path / "report.dcm"
    path.write_text("this is a radiology report, not an image\n" * 10)
    with pytest.raises(ImageReadError, match="report.dcm: not a DICOM file"):
        read_image(path)


def test_missing_codec_names_the_extra(monkeypatch):
    class Unavailable:
        is_available = False
        missing_dependencies = ("pylibjpeg - requires pylibjpeg-openjpeg",)

    monkeypatch.setattr(dicom_reader, "get_decoder", lambda syntax: Unavailable())
    with pytest.raises(ImageReadError, match=r"cxrgan-desktop\[dicom-codecs\]"):
        read_image(real_dicom("RG1_J2KR.dcm"))


def test_syntax_outside_the_extra_names_gdcm():
    from pydicom.pixels import get_decoder

    path = real_dicom("JPEG-LL.dcm")
    if get_decoder(pydicom.dcmread(path).file_meta.TransferSyntaxUID).is_available:
        pytest.skip("a JPEG Lossless (process 14) decoder is installed here")
    with pytest.raises(ImageReadError, match="python-gdcm"):
        read_image(path)


def _save(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return path


def test_png_8_and_16_bit_and_grey_rgb(tmp_path):
    ramp16 = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    image = read_image(_save(tmp_path / "a.png", ramp16))
    np.testing.assert_allclose(image.pixels, ramp16 / 65535, atol=1e-7)
    ramp8 = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
    np.testing.assert_allclose(read_image(_save(tmp_path / "b.png", ramp8)).pixels, ramp8 / 255)
    rgb = np.stack([ramp8] * 3, axis=-1)
    grey = read_image(_save(tmp_path / "c.png", rgb))
    np.testing.assert_allclose(grey.pixels, ramp8 / 255, atol=1e-6)


def test_colour_png_is_refused(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    with pytest.raises(ImageReadError, match="colour"):
        read_image(_save(tmp_path / "red.png", rgb))


def test_jpeg_and_tiff(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
    jpeg = read_image(_save(tmp_path / "x.jpg", ramp, quality=95))
    assert jpeg.file_format == "JPEG" and np.abs(jpeg.pixels - ramp / 255).max() < 0.05
    tiff16 = (np.tile(np.linspace(0, 65535, 64), (64, 1))).astype(np.uint16)
    tiff = read_image(_save(tmp_path / "x.tif", tiff16))
    np.testing.assert_allclose(tiff.pixels, tiff16 / 65535, atol=1e-6)
    floats = np.tile(np.linspace(-1000, 3000, 64, dtype=np.float32), (64, 1))
    float_tiff = read_image(_save(tmp_path / "f.tif", floats))
    assert float_tiff.normalisation.startswith("percentiles")


def test_multipage_tiff_warns(tmp_path):
    pages = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 200)]
    pages[0].save(tmp_path / "p.tif", save_all=True, append_images=pages[1:])
    image = read_image(tmp_path / "p.tif")
    assert image.pixels.mean() == pytest.approx(10 / 255) and image.warnings


def test_truncated_png(tmp_path):
    noisy = np.random.default_rng(0).integers(0, 65535, (256, 256)).astype(np.uint16)
    data = _save(tmp_path / "full.png", noisy).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png: damaged PNG"):
        read_image(tmp_path / "cut.png")


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(real_dicom("RG3_UNCR.dcm"), folder / "RG3_UNCR.dcm")
    shutil.copy(real_dicom("MR_small.dcm"), folder / "sub" / "no_suffix")
    _save(folder / "sub" / "ramp.png", np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1)))
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return folder


def test_scan_reports_and_never_aborts(mixed_folder):
    results = list(scan_images([mixed_folder]))
    read = sorted(r.source.name for r in results if not isinstance(r, Skipped))
    skipped = {r.source.name: r.reason for r in results if isinstance(r, Skipped)}
    assert read == ["RG3_UNCR.dcm", "no_suffix", "ramp.png"]
    assert set(skipped) == {"notes.txt", "broken.png"}
    assert "not an image" in skipped["notes.txt"]


def test_convert_writes_pngs_and_a_report(mixed_folder, tmp_path):
    report = convert_images([mixed_folder], tmp_path / "out")
    rows = _rows(report.report_path)
    by_source = {row["source"].split("/")[-1]: row for row in rows}
    assert by_source["notes.txt"]["status"] == "skipped"
    assert by_source["broken.png"]["status"] == "skipped" and by_source["broken.png"]["note"]
    dicom_row = by_source["RG3_UNCR.dcm"]
    assert dicom_row["status"] == "converted" and dicom_row["photometric"] == "MONOCHROME1"
    assert dicom_row["sop_instance_uid"] and "window" in dicom_row["normalisation"]
    assert by_source["no_suffix"]["output"] == "sub__no_suffix.png"
    original = read_image(mixed_folder / "RG3_UNCR.dcm").pixels
    np.testing.assert_allclose(read_png16(tmp_path / "out" / "RG3_UNCR.png"), original,
                               atol=0.5 / 65535 + 1e-7)


def test_convert_cancel_keeps_a_report(mixed_folder, tmp_path):
    cancel = threading.Event()

    def progress(fraction, message=""):
        cancel.set()

    with pytest.raises(Cancelled):
        convert_images([mixed_folder], tmp_path / "out", progress=progress, cancel=cancel)
    rows = _rows(tmp_path / "out" / "conversion_report.csv")
    assert rows[-1]["status"] == "cancelled" and len(rows) == 2


def test_output_names_keep_folders_apart(tmp_path):
    (tmp_path / "a").mkdir()
    assert output_name(tmp_path / "a" / "x.dcm", [tmp_path]) == "a__x.png"
    assert output_name(tmp_path / "a" / "x.dcm", [tmp_path / "a" / "x.dcm"]) == "x.png"


def test_cli_convert(mixed_folder, tmp_path, capsys):
    assert cli.main(["convert", str(mixed_folder), "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert "converted 3 image(s), skipped 2" in captured.out
    assert "notes.txt" in captured.err
    assert cli.main(["convert", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2


def test_exported_synthetic_dicom_reads_back_to_the_same_pixels(tmp_path):
    from cxrgan_desktop.imaging.dicom_export import (
        SyntheticImageInfo,
        export_dicom,
        new_synthetic_series,
    )

    image = np.random.default_rng(3).random((48, 40)).astype(np.float32)
    path = export_dicom(tmp_path / "syn.dcm", image, new_synthetic_series("m", "0" * 64),
                        SyntheticImageInfo(0, seed=1))
    back = read_image(path)
    assert back.photometric == "MONOCHROME2" and "window c=32768 w=65536" in back.normalisation
    exact = np.round(image.astype(np.float64) * 65535) / 65535
    np.testing.assert_allclose(back.pixels, exact, atol=1e-6)
