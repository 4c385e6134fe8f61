"""DICOM (and 16-bit PNG + sidecar) export of synthetic radiographs.

The files must pass dicom3tools' ``dciodvfy`` without errors, hold exactly round(65535 * pixel),
and say beyond doubt that they are synthetic. What pydicom can read is checked always; only
the checks by ``dciodvfy`` and ``dcmdump`` skip where those tools are not installed.
"""

import json
import shutil
import subprocess
import threading

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.uid import UID

from cxrgan_desktop import __version__, cli
from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.engine.checkpoints import OutputAdapter, save_generator
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.imaging import dicom_export as dx
from cxrgan_desktop.imaging.png16 import to_uint16
from cxrgan_desktop.imaging.windowing import Window, unit_window

SHA = "0123456789abcdef" * 4
needs_dciodvfy = pytest.mark.skipif(shutil.which("dciodvfy") is None,
                                    reason="dciodvfy (dicom3tools) is not installed")
needs_dcmdump = pytest.mark.skipif(shutil.which("dcmdump") is None,
                                   reason="dcmdump (dcmtk) is not installed")


def _image(shape, seed=0):
    image = np.random.default_rng(seed).random(shape).astype(np.float32)
    image[0, :3] = [0.0, 1.0, 0.5]  # the extremes and a rounding tie
    return image


def dciodvfy(path):
    """Run dciodvfy; fail on any error (or on attributes outside the standard IOD)."""
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    bad = [line for line in output.splitlines()
           if "Error" in line or "Standard Extended" in line]
    assert not bad, f"dciodvfy {path}:\n{output}"
    return output


SHAPES = [(64, 64), (1024, 1024), (40, 24)]


def _exported(folder, shape):
    """(path, image): one image of ``shape`` exported as DICOM."""
    series = dx.new_synthetic_series("tiny", SHA)
    image = _image(shape)
    return dx.export_dicom(folder / "img_00000.dcm", image, series,
                           dx.SyntheticImageInfo(0, seed=7)), image


@needs_dciodvfy
@pytest.mark.parametrize("shape", SHAPES)
def test_export_passes_dciodvfy(tmp_path, shape):
    dciodvfy(_exported(tmp_path, shape)[0])


@pytest.mark.parametrize("shape", SHAPES)
def test_export_holds_the_png16_values(tmp_path, shape):
    path, image = _exported(tmp_path, shape)
    ds = pydicom.dcmread(path)
    assert ds.pixel_array.dtype == np.uint16 and ds.pixel_array.shape == shape
    np.testing.assert_array_equal(ds.pixel_array, to_uint16(image))
    np.testing.assert_array_equal(
        ds.pixel_array, np.round(image.astype(np.float64) * 65535).astype(np.uint16))
    assert ds.pixel_array[0, :3].tolist() == [0, 65535, 32768]


def _marked(folder):
    """(path, series): the image whose synthetic markers the next two tests read."""
    series = dx.new_synthetic_series("tiny", SHA)
    return dx.export_dicom(folder / "a.dcm", _image((32, 32)), series,
                           dx.SyntheticImageInfo(3, seed=11)), series


def test_every_synthetic_marker_is_present_with_its_exact_value(tmp_path):
    path, series = _marked(tmp_path)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert ds.preamble == b"\0" * 128
    assert ds.ConversionType == "SYN"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "SYNTHETIC"]
    assert ds.BurnedInAnnotation == "NO"
    assert ds.PatientIdentityRemoved == "YES" and "Synthetic" in ds.DeidentificationMethod
    assert str(ds.PatientName) == "SYNTHETIC^CXRGAN"
    assert ds.PatientID == series.patient_id and ds.PatientID.startswith("SYN-")
    assert len(ds.PatientID) > 12
    assert ds.BodyPartExamined == "CHEST"
    assert list(ds.PatientOrientation) == ["L", "F"]
    assert "ViewPosition" not in ds  # not part of the SC IOD (dciodvfy: non-standard)
    assert ds.Manufacturer == "cxrgan-desktop" and ds.SoftwareVersions == __version__
    assert (ds.SamplesPerPixel, ds.PhotometricInterpretation) == (1, "MONOCHROME2")
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == \
        (16, 16, 15, 0)
    assert ds.InstanceNumber == 4
    for text in (ds.ImageComments, ds.DerivationDescription):
        assert "SYNTHETIC IMAGE" in text and "tiny" in text and SHA in text
        assert "latent seed 11, index 3" in text
    assert "SYNTHETIC" in ds.StudyDescription and "SYNTHETIC" in ds.SeriesDescription
    # the default window shows the full stored range
    assert float(ds.WindowCenter) == unit_window().center == 32768.0
    assert float(ds.WindowWidth) == unit_window().width == 65536.0


@needs_dcmdump
def test_dcmdump_reads_the_synthetic_markers(tmp_path):
    """A second reader (dcmtk) sees the markers pydicom reads above."""
    path, _ = _marked(tmp_path)
    proc = subprocess.run(["dcmdump", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "SYNTHETIC^CXRGAN" in proc.stdout and "(0008,0064) CS [SYN]" in proc.stdout


def test_uids_are_valid_distinct_per_image_and_shared_per_batch(tmp_path):
    batches = []
    for b in range(2):
        series = dx.new_synthetic_series("tiny", SHA)
        infos = [dx.SyntheticImageInfo(i, seed=b) for i in range(3)]
        paths = dx.export_images(tmp_path / f"b{b}", [_image((16, 16), i) for i in range(3)],
                                 infos, series)
        assert [p.name for p in paths] == ["img_00000.dcm", "img_00001.dcm", "img_00002.dcm"]
        batches.append([pydicom.dcmread(p) for p in paths])
    for datasets in batches:
        sops = [ds.SOPInstanceUID for ds in datasets]
        assert len(set(sops)) == 3
        assert len({ds.StudyInstanceUID for ds in datasets}) == 1
        assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
        assert len({(ds.StudyDate, ds.StudyTime, ds.SeriesNumber, ds.PatientID)
                    for ds in datasets}) == 1
        assert [ds.InstanceNumber for ds in datasets] == [1, 2, 3]
        for ds in datasets:
            for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID,
                        ds.file_meta.ImplementationClassUID):
                assert UID(uid).is_valid, uid
            assert ds.StudyInstanceUID != ds.SeriesInstanceUID
    a, b = batches[0][0], batches[1][0]
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert a.SeriesInstanceUID != b.SeriesInstanceUID
    assert a.PatientID != b.PatientID
    assert not {ds.SOPInstanceUID for ds in batches[0]} & {ds.SOPInstanceUID for ds in batches[1]}


def _windowed(folder):
    """An image with a chosen window, LCO details and a model name that needs escaping."""
    lco = dx.LCOInfo(requested={"Effusion": True, "Mass": False},
                     probabilities={"Effusion": 0.912, "Mass": 0.031},
                     classifier_name="densenet-cxr14", classifier_sha256="f" * 64,
                     details={"steps": 200})
    series = dx.new_synthetic_series("modèle ünï \\ test", SHA)  # non-ASCII and a backslash
    window = Window(center=20000.5, width=30001)
    return dx.export_dicom(folder / "w.dcm", _image((32, 32)), series,
                           dx.SyntheticImageInfo(0, latents_source="z.npy", lco=lco,
                                                 window=window))


@needs_dciodvfy
def test_chosen_window_and_lco_details_pass_dciodvfy(tmp_path):
    dciodvfy(_windowed(tmp_path))


def test_chosen_window_and_lco_details_are_written(tmp_path):
    ds = pydicom.dcmread(_windowed(tmp_path))
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (20000.5, 30001.0)
    assert ds.WindowCenterWidthExplanation == "USER" and ds.VOILUTFunction == "LINEAR"
    assert "modèle ünï / test" in ds.ImageComments
    assert "latent vector 0 of z.npy" in ds.ImageComments
    assert "Effusion=yes, Mass=no" in ds.ImageComments
    assert "Effusion=0.912" in ds.ImageComments and "f" * 64 in ds.ImageComments


def test_png16_with_sidecar_round_trips_the_same_provenance(tmp_path):
    series = dx.new_synthetic_series("tiny", SHA, series_number=5)
    lco = dx.LCOInfo(requested={"Nodule": True}, probabilities={"Nodule": 0.75})
    info = dx.SyntheticImageInfo(2, seed=9, lco=lco, window=Window(1000, 2000))
    image = _image((24, 20))
    path = dx.export_png16_with_sidecar(tmp_path / "img_00002.png", image, series, info)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), to_uint16(image))
    assert dx.sidecar_path(path) == tmp_path / "img_00002.json"
    data = dx.read_sidecar(path)
    assert data == json.loads(json.dumps(dx.provenance(series, info)))
    assert data["synthetic"] is True and data["software"]["version"] == __version__
    assert data["series"]["study_instance_uid"] == series.study_uid
    assert data["series"]["patient_name"] == "SYNTHETIC^CXRGAN"
    assert data["series"]["model"] == {"name": "tiny", "sha256": SHA}
    assert data["series"]["series_number"] == 5
    assert data["image"]["seed"] == 9 and data["image"]["index"] == 2
    assert data["image"]["window"] == {"center": 1000, "width": 2000}
    assert data["image"]["lco"]["requested"] == {"Nodule": True}
    assert data["image"]["lco"]["probabilities"] == {"Nodule": 0.75}
    assert "latent seed 9, index 2" in data["description"]
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a cxrgan-desktop sidecar"):
        dx.read_sidecar(tmp_path / "other.png")


def test_export_images_offers_both_formats_and_cancels_between_images(tmp_path):
    series = dx.new_synthetic_series("tiny", SHA)
    images = [_image((8, 8), i) for i in range(4)]
    infos = [dx.SyntheticImageInfo(i, seed=0) for i in range(4)]
    paths = dx.export_images(tmp_path / "p", images, infos, series, image_format="png16")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == \
        [f"img_0000{i}.{ext}" for i in range(4) for ext in ("json", "png")]
    assert paths == sorted(paths)
    cancel, seen = threading.Event(), []

    def progress(fraction, message=""):
        seen.append(fraction)
        if fraction >= 0.5:
            cancel.set()

    with pytest.raises(Cancelled):
        dx.export_images(tmp_path / "d", images, infos, series, progress=progress,
                         cancel=cancel)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == \
        ["img_00000.dcm", "img_00001.dcm"]
    assert seen == [0.25, 0.5]
    with pytest.raises(ValueError, match="unknown export format"):
        dx.export_images(tmp_path / "x", images, infos, series, image_format="jpeg")
    with pytest.raises(ValueError, match="NaN"):
        dx.export_dicom(tmp_path / "nan.dcm", np.full((4, 4), np.nan), series, infos[0])


def test_a_failure_mid_write_leaves_no_partial_file_under_the_final_name(tmp_path, monkeypatch):
    series = dx.new_synthetic_series("tiny", SHA)
    info = dx.SyntheticImageInfo(0, seed=1)
    target = tmp_path / "img_00000.dcm"
    real_write_dataset = pydicom.filewriter.write_dataset
    calls = []

    def write_half_then_fail(fp, dataset, *args, **kwargs):
        if "PixelData" not in dataset:  # the file meta group: let it through
            return real_write_dataset(fp, dataset, *args, **kwargs)
        # the main dataset, after preamble and file meta went into the temp file
        calls.append(list(tmp_path.glob(".img_00000.dcm.*.tmp")))
        fp.write(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 192")  # a real start, then the failure
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pydicom.filewriter, "write_dataset", write_half_then_fail)
    with pytest.raises(OSError, match="simulated"):
        dx.export_dicom(target, _image((64, 64)), series, info)
    assert len(calls) == 1 and len(calls[0]) == 1  # it failed while writing the temp file
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(pydicom.filewriter, "write_dataset", real_write_dataset)
    dx.export_dicom(target, _image((64, 64)), series, info)
    before = target.read_bytes()
    monkeypatch.setattr(pydicom.filewriter, "write_dataset", write_half_then_fail)
    with pytest.raises(OSError, match="simulated"):
        dx.export_dicom(target, _image((64, 64), seed=5), series, info)
    assert target.read_bytes() == before  # the previous file is untouched
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    config = PGGANConfig(latent_size=16, channels=(32, 16, 16, 8), image_channels=1)
    return save_generator(tmp_path / "tiny.safetensors", Generator(config),
                          OutputAdapter(1, "signed"), "tiny")


@pytest.fixture
def cli_dicom(tmp_path, model_file, capsys):
    """The folder ``cxrgan generate --format dicom`` wrote three images into."""
    out = tmp_path / "out"
    code = cli.main(["generate", "--model", str(model_file), "--n", "3", "--seed", "4",
                     "--format", "dicom", "--window", "30000,20001", "--device", "cpu",
                     "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    return out


@needs_dciodvfy
def test_cli_generate_format_dicom_passes_dciodvfy(cli_dicom):
    files = sorted(cli_dicom.glob("*.dcm"))
    assert len(files) == 3
    for path in files:
        dciodvfy(path)


def test_cli_generate_format_dicom_writes_synthetic_files(cli_dicom):
    out = cli_dicom
    files = sorted(out.glob("*.dcm"))
    assert [p.name for p in files] == ["img_00000.dcm", "img_00001.dcm", "img_00002.dcm"]
    assert not list(out.glob("*.png"))
    datasets = [pydicom.dcmread(p) for p in files]
    for i, ds in enumerate(datasets):
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (30000.0, 20001.0)
        assert f"latent seed 4, index {i}" in ds.ImageComments
        assert ds.ConversionType == "SYN" and ds.Rows == ds.Columns == 32
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"].startswith("dicom")
    assert manifest["dicom"]["series_instance_uid"] == datasets[0].SeriesInstanceUID
    assert [e["file"] for e in manifest["images"]] == [p.name for p in files]


def test_cli_rejects_a_bad_window(tmp_path, model_file, capsys):
    base = ["generate", "--model", str(model_file), "--n", "1", "--out", str(tmp_path / "o")]
    assert cli.main([*base, "--window", "100,200"]) == cli.EXIT_ERROR
    assert "--format dicom" in capsys.readouterr().err
    for bad in ("100", "a,b", "100,0.5"):
        assert cli.main([*base, "--format", "dicom", "--window", bad]) == cli.EXIT_ERROR
        assert "--window expects CENTER,WIDTH" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
