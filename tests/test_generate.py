import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from cxrgan_desktop import cli
from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.engine.checkpoints import OutputAdapter, load_generator, save_generator
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.engine.render import Renderer, latents_for_seed
from cxrgan_desktop.tasks.generate import generate_to_folder, image_name
from tests.reference.segal_layout import random_segal_generator_state

CONFIG = PGGANConfig(latent_size=16, channels=(32, 16, 16, 8), image_channels=1)


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    G = Generator(CONFIG)
    for p in G.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    return save_generator(tmp_path / "tiny.safetensors", G, OutputAdapter(1, "signed"), "tiny")


def _png(path):
    return np.asarray(Image.open(path))


def test_pngs_hold_round_65535_times_pixel_in_latent_order(tmp_path, model_file):
    model = load_generator(model_file)
    result = generate_to_folder(model, tmp_path / "out", n=5, seed=4, batch_size=5)
    names = [p.name for p in result.files]
    assert names == sorted(names) == [image_name(i, 5) for i in range(5)]
    expected = Renderer(model).render(latents_for_seed(4, 5, 16)).numpy()[:, 0]
    for i, path in enumerate(result.files):
        pixels = _png(path)
        assert pixels.dtype == np.uint16 and pixels.shape == (32, 32)
        exact = np.round(expected[i].astype(np.float64) * 65535).astype(np.uint16)
        np.testing.assert_array_equal(pixels, exact)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "latents.npy"),
                                  latents_for_seed(4, 5, 16))


def test_png16_value_mapping():
    from cxrgan_desktop.imaging.png16 import to_uint16

    values = np.array([[0.0, 0.5, 1.0], [1 / 65535, -0.2, 1.3]], dtype=np.float32)
    np.testing.assert_array_equal(to_uint16(values), [[0, 32768, 65535], [1, 0, 65535]])


def test_png16_file_round_trip(tmp_path):
    from cxrgan_desktop.imaging.png16 import read_png16, write_png16

    image = np.random.default_rng(0).random((7, 5)).astype(np.float32)
    write_png16(tmp_path / "x.png", image)
    assert Image.open(tmp_path / "x.png").mode in ("I;16", "I")
    np.testing.assert_allclose(read_png16(tmp_path / "x.png"), image, atol=0.5 / 65535)


def test_manifest_records_what_reproduces_the_run(tmp_path, model_file):
    model = load_generator(model_file)
    result = generate_to_folder(model, tmp_path / "out", n=3, seed=9, batch_size=2)
    manifest = json.loads(result.manifest.read_text())
    assert manifest["model"]["sha256"] == model.sha256
    assert manifest["seed"] == 9 and manifest["latents"]["file"] == "latents.npy"
    assert manifest["complete"] is True and manifest["device"].startswith("CPU")
    assert [entry["index"] for entry in manifest["images"]] == [0, 1, 2]
    assert manifest["software"]["version"]


def test_same_seed_same_images_whatever_the_batch_size(tmp_path, model_file):
    model = load_generator(model_file)
    a = generate_to_folder(model, tmp_path / "a", n=4, seed=1, batch_size=1)
    b = generate_to_folder(model, tmp_path / "b", n=4, seed=1, batch_size=4)
    for x, y in zip(a.files, b.files, strict=True):
        assert np.abs(_png(x).astype(int) - _png(y).astype(int)).max() <= 1


def test_cancel_leaves_whole_files_and_an_honest_manifest(tmp_path, model_file):
    model = load_generator(model_file)
    cancel = threading.Event()

    def progress(fraction, message=""):
        if fraction >= 0.5:
            cancel.set()

    with pytest.raises(Cancelled):
        generate_to_folder(model, tmp_path / "out", n=8, seed=0, batch_size=2,
                           progress=progress, cancel=cancel)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    written = sorted((tmp_path / "out").glob("img_*.png"))
    assert manifest["complete"] is False and len(written) == 4
    assert [e["file"] for e in manifest["images"]] == [p.name for p in written]
    assert not list((tmp_path / "out").glob(".*tmp"))
    for path in written:
        _png(path)  # every file that exists decodes


def test_cli_generate_with_latents_file_renders_them_exactly(tmp_path, model_file):
    latents = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32) * 3
    np.save(tmp_path / "z.npy", latents)
    code = cli.main(["generate", "--model", str(model_file), "--latents", str(tmp_path / "z.npy"),
                     "--batch-size", "3", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 0
    expected = Renderer(load_generator(model_file)).render(latents).numpy()[:, 0]
    for i in range(3):
        exact = np.round(expected[i].astype(np.float64) * 65535).astype(np.uint16)
        np.testing.assert_array_equal(_png(tmp_path / "out" / image_name(i, 3)), exact)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["latents"]["source"] == "z.npy" and manifest["seed"] is None


@pytest.mark.parametrize("shape", [(3, 15), (16,)])
def test_cli_rejects_latents_of_the_wrong_shape(tmp_path, model_file, capsys, shape):
    np.save(tmp_path / "z.npy", np.zeros(shape, np.float32))
    code = cli.main(["generate", "--model", str(model_file), "--latents", str(tmp_path / "z.npy"),
                     "--out", str(tmp_path / "out")])
    assert code == cli.EXIT_ERROR
    assert "z.npy" in capsys.readouterr().err


def test_cli_import_then_generate_by_name(tmp_path, capsys):
    torch.save(random_segal_generator_state((16, 16, 8), 8, seed=2), tmp_path / "paper.pth")
    assert cli.main(["import-model", str(tmp_path / "paper.pth"), "--name", "paper"]) == 0
    out = capsys.readouterr().out
    assert "SHA-256" in out and "installed as 'paper'" in out
    assert cli.main(["models"]) == 0
    assert "paper" in capsys.readouterr().out
    assert cli.main(["generate", "--model", "paper", "--n", "2", "--out",
                     str(tmp_path / "g")]) == 0
    assert _png(tmp_path / "g" / "img_00000.png").shape == (16, 16)
    assert cli.main(["import-model", str(tmp_path / "paper.pth"), "--name", "paper"]) == 2
    assert "already installed" in capsys.readouterr().err


def test_cli_errors_are_one_readable_line(tmp_path, capsys, monkeypatch):
    from cxrgan_desktop.store import zoo

    assert cli.main(["generate", "--model", "nothing-here", "--out", str(tmp_path)]) == 2
    assert "no model file or installed model named 'nothing-here'" in capsys.readouterr().err
    monkeypatch.setattr(zoo, "bundled_models", lambda: [])  # a build without the demo
    assert cli.main(["generate", "--out", str(tmp_path)]) == 2
    assert "no model is installed" in capsys.readouterr().err
    assert cli.main(["generate", "--model", "segal2020-pggan-cxr14", "--out", str(tmp_path)]) == 2
    assert "import-model" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"junk")
    assert cli.main(["info", str(bad)]) == 2
    assert "bad.pth" in capsys.readouterr().err


def test_ctrl_c_in_the_cli_stops_cleanly(tmp_path):
    """A real SIGINT to a running `cxrgan generate`: exit 130, whole files, honest manifest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    torch.manual_seed(0)
    config = PGGANConfig(latent_size=16, channels=(32, 32, 32, 16, 16, 8, 8), image_channels=1)
    path = save_generator(tmp_path / "m.safetensors", Generator(config), OutputAdapter(), "m")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "cxrgan_desktop", "generate", "--model",
                             str(path), "--n", "400", "--batch-size", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while not list(out.glob("img_*.png")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_CANCELLED, err.decode()
    manifest = json.loads((out / "manifest.json").read_text())
    written = sorted(out.glob("img_*.png"))
    assert manifest["complete"] is False and 0 < len(written) < 400
    assert [e["file"] for e in manifest["images"]] == [p.name for p in written]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    for image in written:
        assert _png(image).shape == (256, 256)


def test_dicom_format_holds_the_png16_values_in_one_series(tmp_path, model_file):
    import pydicom

    from cxrgan_desktop.imaging.windowing import Window
    from cxrgan_desktop.tasks.generate import IMAGE_FORMATS

    assert "dicom" in IMAGE_FORMATS
    model = load_generator(model_file)
    result = generate_to_folder(model, tmp_path / "out", n=3, seed=4, batch_size=2,
                                image_format="dicom", window=Window(30000, 4001))
    names = [p.name for p in result.files]
    assert names == sorted(names) == [image_name(i, 3, "dicom") for i in range(3)]
    assert names[0] == "img_00000.dcm" and not list((tmp_path / "out").glob("*.png"))
    z = latents_for_seed(4, 3, 16)  # the reference in the same batches (2 + 1) as the job
    expected = np.concatenate([Renderer(model).render(z[:2]).numpy()[:, 0],
                               Renderer(model).render(z[2:]).numpy()[:, 0]])
    datasets = [pydicom.dcmread(p) for p in result.files]
    for i, ds in enumerate(datasets):
        exact = np.round(expected[i].astype(np.float64) * 65535).astype(np.uint16)
        np.testing.assert_array_equal(ds.pixel_array, exact)
        assert ds.ConversionType == "SYN" and ds.InstanceNumber == i + 1
        assert model.sha256 in ds.ImageComments and f"seed 4, index {i}" in ds.ImageComments
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (30000.0, 4001.0)
    assert {ds.SeriesInstanceUID for ds in datasets} == {result.series.series_uid}
    assert {ds.StudyInstanceUID for ds in datasets} == {result.series.study_uid}
    assert len({ds.SOPInstanceUID for ds in datasets}) == 3
    manifest = json.loads(result.manifest.read_text())
    assert manifest["complete"] is True and manifest["format"].startswith("dicom")
    assert manifest["dicom"]["study_instance_uid"] == result.series.study_uid
    assert manifest["dicom"]["window"] == {"center": 30000, "width": 4001}
    again = generate_to_folder(model, tmp_path / "again", n=1, seed=4, image_format="dicom")
    assert again.series.series_uid != result.series.series_uid
    assert again.series.study_uid != result.series.study_uid


def test_dicom_from_a_latents_file_names_it(tmp_path, model_file):
    import pydicom

    np.save(tmp_path / "z.npy", np.zeros((2, 16), np.float32))
    model = load_generator(model_file)
    result = generate_to_folder(model, tmp_path / "out", latents=np.zeros((2, 16), np.float32),
                                latents_source=tmp_path / "z.npy", image_format="dicom")
    assert "latent vector 1 of z.npy" in pydicom.dcmread(result.files[1]).ImageComments
    with pytest.raises(ValueError, match="DICOM"):
        from cxrgan_desktop.imaging.windowing import unit_window

        generate_to_folder(model, tmp_path / "png", n=1, seed=0, window=unit_window())


def test_cli_device_choices_match_the_engines():
    from cxrgan_desktop.cli.common import DEVICE_CHOICES
    from cxrgan_desktop.engine.devices import DEVICE_CHOICES as ENGINE

    assert tuple(DEVICE_CHOICES) == tuple(ENGINE)
