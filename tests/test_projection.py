"""Projection of a radiograph into the latent space (engine/projection.py, engine/msssim.py,
tasks/project.py, ``cxrgan project``).

SSIM and MS-SSIM are checked against numpy written from the papers' definitions (scikit-image
is not installed here): every window visited explicitly with centred (not E[x^2] - mu^2)
moments, and scipy's Gaussian filter the way scikit-image's ``structural_similarity`` uses
it. The projection figures were measured on this CPU (torch 2.13, one thread) with the
bundled demo model (64 px, d = 128) and are held with a margin:

- a generated image (latent seed 777, not a start) with 2 starts x 150 steps: SSIM 0.9929,
  PSNR 38.2 dB (the starts' SSIM 0.759 and 0.712);
- 8 held-out phantoms (seed 1234; the demo model was trained on seed 0) with 1 start x 100
  steps: mean SSIM 0.7616 (min 0.6952), mean PSNR 21.90 dB (min 20.11).
"""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from cxrgan_desktop.engine import msssim
from cxrgan_desktop.engine.projection import project, to_16bit
from cxrgan_desktop.store import zoo

DEMO = "demo-phantom-64"


# -- references -------------------------------------------------------------------------------

def _gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    return np.outer(g, g)


def ssim_terms_by_definition(a: np.ndarray, b: np.ndarray, size: int = 11
                             ) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure over every window inside the image (Wang 2004),
    each window's moments computed centred."""
    w = _gaussian(size)
    pa = np.lib.stride_tricks.sliding_window_view(a, (size, size))
    pb = np.lib.stride_tricks.sliding_window_view(b, (size, size))
    mu_a = np.einsum("ijkl,kl->ij", pa, w)
    mu_b = np.einsum("ijkl,kl->ij", pb, w)
    da, db = pa - mu_a[..., None, None], pb - mu_b[..., None, None]
    var_a = np.einsum("ijkl,kl->ij", da * da, w)
    var_b = np.einsum("ijkl,kl->ij", db * db, w)
    cov = np.einsum("ijkl,kl->ij", da * db, w)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
    return float((lum * cs).mean()), float(cs.mean())


def ssim_like_skimage(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1), step by step: scipy's Gaussian (truncate 3.5,
    11 taps), then the 5-px border cropped before the mean."""
    def f(x):
        return gaussian_filter(x, sigma=1.5, truncate=3.5)

    ux, uy = f(a), f(b)
    vx, vy, vxy = f(a * a) - ux * ux, f(b * b) - uy * uy, f(a * b) - ux * uy
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean())


def ms_ssim_by_definition(a: np.ndarray, b: np.ndarray, scales: int) -> float:
    """Wang, Simoncelli and Bovik 2003 with the first ``scales`` weights renormalised."""
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333][:scales])
    weights /= weights.sum()
    value = 1.0
    for j in range(scales):
        whole, cs = ssim_terms_by_definition(a, b)
        value *= (whole if j == scales - 1 else cs) ** weights[j]
        h = a.shape[0] // 2 * 2
        a = a[:h, :h].reshape(h // 2, 2, h // 2, 2).mean(axis=(1, 3))
        b = b[:h, :h].reshape(h // 2, 2, h // 2, 2).mean(axis=(1, 3))
    return value


def _pairs(size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    smooth = gaussian_filter(rng.random((size, size)), 3)
    smooth = (smooth - smooth.min()) / np.ptp(smooth)
    other = gaussian_filter(rng.random((size, size)), 2)
    other = (other - other.min()) / np.ptp(other)
    return [(smooth, np.clip(smooth + rng.normal(0, 0.05, smooth.shape), 0, 1)),
            (smooth, gaussian_filter(smooth, 1.2)),
            (smooth, np.clip(smooth * 0.8 + 0.15, 0, 1)),
            (smooth, 0.5 * smooth + 0.5 * other)]


def _torch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, np.float64))[None, None]


@pytest.fixture(scope="module")
def demo():
    from cxrgan_desktop.engine.checkpoints import load_generator

    return load_generator(zoo.resolve_model(DEMO))


def _read16(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).astype(np.int64)


# -- SSIM and MS-SSIM -------------------------------------------------------------------------

@pytest.mark.parametrize("which", range(4))
def test_ssim_matches_the_definition_and_scikit_images_recipe(which):
    a, b = _pairs(64)[which]
    ours = float(msssim.ssim(_torch(a), _torch(b))[0])
    assert ours == pytest.approx(ssim_terms_by_definition(a, b)[0], abs=1e-9)
    assert ours == pytest.approx(ssim_like_skimage(a, b), abs=1e-9)
    assert 0.0 < ours < 1.0


@pytest.mark.parametrize(("size", "scales"), [(64, 3), (32, 2), (176, 5)])
def test_ms_ssim_matches_the_definition(size, scales):
    assert msssim.ms_ssim_scales(size) == scales
    for a, b in _pairs(size):
        ours = float(msssim.ms_ssim(_torch(a), _torch(b))[0])
        assert ours == pytest.approx(ms_ssim_by_definition(a, b, scales), rel=1e-9)


def test_scales_and_windows_for_small_images():
    assert [msssim.ms_ssim_scales(s) for s in (4, 8, 16, 21, 22, 64, 128, 175, 176, 1024)] == \
        [1, 1, 1, 1, 2, 3, 4, 4, 5, 5]
    assert [msssim.window_for(s) for s in (4, 8, 11, 64)] == [3, 7, 11, 11]
    a, b = _pairs(64)[0]
    small_a, small_b = a[:8, :8], b[:8, :8]
    assert float(msssim.ssim(_torch(small_a), _torch(small_b))[0]) == pytest.approx(
        ssim_terms_by_definition(small_a, small_b, size=7)[0], abs=1e-9)


def test_identical_images_score_one_and_anticorrelated_stay_finite():
    a, _ = _pairs(64)[0]
    assert float(msssim.ms_ssim(_torch(a), _torch(a))[0]) == pytest.approx(1.0, abs=1e-12)
    x = _torch(a).requires_grad_(True)
    value = msssim.ms_ssim(x, _torch(1.0 - a))
    value.sum().backward()
    assert torch.isfinite(value).all() and 0.0 <= float(value[0].detach()) < 0.05
    assert torch.isfinite(x.grad).all()


# -- projection -------------------------------------------------------------------------------

def test_a_generated_image_is_recovered(demo):
    from cxrgan_desktop.engine.render import Renderer, latents_for_seed

    renderer = Renderer(demo)
    size = demo.config.latent_size
    truth = latents_for_seed(777, 1, size)
    target = to_16bit(renderer.render(truth)[0, 0].numpy())
    result = project(demo, target, restarts=2, steps=150, seed=0)
    starts = renderer.render(latents_for_seed(0, 2, size))[:, 0].numpy()
    start_ssim = [ssim_terms_by_definition(to_16bit(s).astype(np.float64),
                                           target.astype(np.float64))[0] for s in starts]
    found = ssim_terms_by_definition(result.reconstruction.astype(np.float64),
                                     target.astype(np.float64))[0]
    assert result.ssim == pytest.approx(found, abs=1e-9)
    mse = np.mean((result.reconstruction.astype(np.float64) - target) ** 2)
    assert result.psnr == pytest.approx(10 * np.log10(1 / mse), abs=1e-9)
    assert found >= 0.98  # measured 0.9929
    assert found > max(start_ssim) + 0.15  # the starts: 0.759 and 0.712
    assert result.psnr >= 34.0  # measured 38.2 dB
    np.testing.assert_allclose(np.sqrt(np.mean(result.latent.astype(np.float64) ** 2)), 1.0,
                               atol=1e-6)
    assert len(result.loss_curve) == 151 and result.loss_curve[-1] < result.loss_curve[0]
    assert result.loss_curve[-1] == pytest.approx(min(result.restart_losses))
    assert 0.0 <= result.typicality.prior_fraction_as_far <= 1.0


def test_held_out_phantoms_reach_the_measured_ssim(demo, tmp_path):
    from cxrgan_desktop.engine.render import Renderer, latents_for_seed
    from cxrgan_desktop.imaging.readers import read_image
    from cxrgan_desktop.tasks.phantom import write_phantoms

    folder = write_phantoms(tmp_path / "held_out", n=8, size=64, seed=1234,
                            images_per_patient=1)
    start = to_16bit(Renderer(demo).render(latents_for_seed(0, 1, demo.config.latent_size))
                     [0, 0].numpy()).astype(np.float64)
    scores, gains = [], []
    for file in sorted(folder.glob("*.png")):
        target = read_image(file).pixels.astype(np.float64)
        result = project(demo, target, restarts=1, steps=100, seed=0)
        score = ssim_terms_by_definition(result.reconstruction.astype(np.float64), target)[0]
        scores.append(score)
        gains.append(score - ssim_terms_by_definition(start, target)[0])
    assert len(scores) == 8
    assert np.mean(scores) >= 0.74  # measured 0.7616
    assert min(scores) >= 0.67  # measured 0.6952
    assert min(gains) > 0.0  # every phantom is closer than the start it came from


def test_the_classifier_term_enters_the_loss(demo):
    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.classifier.installed import resolve_classifier

    classifier = load_classifier(resolve_classifier(f"{DEMO}-classifier")).classifier
    target = np.full((64, 64), 0.5, np.float32)
    plain = project(demo, target, restarts=1, steps=0)
    with_features = project(demo, target, restarts=1, steps=0, classifier=classifier,
                            classifier_weight=1.0)
    assert with_features.loss_curve[0] > plain.loss_curve[0]  # the same start, one more term
    assert with_features.settings["classifier_weight"] == 1.0
    with pytest.raises(ValueError, match="needs a classifier"):
        project(demo, target, classifier_weight=1.0)


# -- the job and the command ------------------------------------------------------------------

@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    from cxrgan_desktop.tasks.phantom import write_phantoms

    folder = write_phantoms(tmp_path_factory.mktemp("one_phantom"), n=1, size=96, seed=1234,
                            images_per_patient=1)
    return next(folder.glob("*.png"))


def test_the_latent_renders_the_reconstruction_through_generate(demo, phantom_file, tmp_path):
    from cxrgan_desktop.cli import main
    from cxrgan_desktop.imaging.readers import read_image
    from cxrgan_desktop.tasks.project import DERIVED_NOTE, ProjectOptions, project_image

    out = tmp_path / "projection"
    result = project_image(phantom_file, demo, out, ProjectOptions(restarts=2, steps=20))
    assert main(["generate", "--model", DEMO, "--latents", str(out / "latent.npy"),
                 "--out", str(tmp_path / "generated"), "--device", "cpu"]) == 0
    generated = _read16(next((tmp_path / "generated").glob("img_*.png")))
    np.testing.assert_array_equal(generated, _read16(out / "reconstruction.png"))
    manifest = json.loads((tmp_path / "generated" / "manifest.json").read_text())
    source_sha = hashlib.sha256(phantom_file.read_bytes()).hexdigest()
    assert manifest["latents"]["derived_from"]["projection_of"] == source_sha
    assert main(["generate", "--model", DEMO, "--latents", str(out / "latent.npy"),
                 "--format", "dicom", "--out", str(tmp_path / "dicom"), "--device",
                 "cpu"]) == 0
    import pydicom

    dataset = pydicom.dcmread(next((tmp_path / "dicom").glob("*.dcm")))
    assert source_sha in str(dataset.get("DerivationDescription", "")) + str(
        dataset.get("ImageComments", ""))

    latent = np.load(out / "latent.npy")
    assert latent.shape == (1, demo.config.latent_size) and latent.dtype == np.float32
    original = _read16(out / "original.png")
    pixels = read_image(phantom_file).pixels  # 96 px -> 64 px, Lanczos, as the cache does
    expected = np.asarray(Image.fromarray(pixels).resize((64, 64), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(original, np.round(np.clip(expected, 0, 1) * 65535))
    reconstruction = _read16(out / "reconstruction.png")
    difference = _read16(out / "difference.png")
    np.testing.assert_allclose(difference / 65535, 0.5 + (reconstruction - original) / 131070,
                               atol=1 / 65535)
    np.testing.assert_array_equal(_read16(out / "side_by_side.png"),
                                  np.concatenate([original, reconstruction, difference], 1))

    record = json.loads((out / "projection.json").read_text())
    assert record["derived"] == DERIVED_NOTE and record["synthetic"] is True
    source_sha = hashlib.sha256(phantom_file.read_bytes()).hexdigest()
    assert record["source"] == {"file_name": phantom_file.name, "sha256": source_sha,
                                "format": "PNG", "height": 96, "width": 96}
    assert record["model"]["sha256"] == demo.sha256
    o, r = original / 65535.0, reconstruction / 65535.0
    assert record["results"]["psnr_db"] == pytest.approx(
        10 * np.log10(1 / np.mean((o - r) ** 2)), abs=1e-6)
    assert record["results"]["ssim"] == pytest.approx(ssim_terms_by_definition(r, o)[0],
                                                      abs=1e-6)
    assert len(record["results"]["loss_curve"]) == 21
    assert len(record["results"]["restart_final_losses"]) == 2
    assert record["settings"]["steps"] == 20 and record["settings"]["restarts"] == 2
    for name, digest in record["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert record["results"]["psnr_db"] == result.projection.psnr


def test_exports_of_a_projected_latent_say_derived(demo, phantom_file, tmp_path):
    import pydicom

    from cxrgan_desktop.imaging.dicom_export import (
        SyntheticImageInfo,
        export_dicom,
        new_synthetic_series,
    )
    from cxrgan_desktop.imaging.synthetic_provenance import provenance
    from cxrgan_desktop.tasks.project import ProjectOptions, project_image, projection_source

    out = tmp_path / "p"
    project_image(phantom_file, demo, out, ProjectOptions(restarts=1, steps=0))
    source_sha = hashlib.sha256(phantom_file.read_bytes()).hexdigest()
    derived = projection_source(out / "latent.npy")
    assert derived is not None and derived.source_sha256 == source_sha
    series = new_synthetic_series(demo.name, demo.sha256)
    info = SyntheticImageInfo(0, latents_source="latent.npy", derived_from=derived)
    target = tmp_path / "x.dcm"
    export_dicom(target, np.full((8, 8), 0.5), series, info)
    ds = pydicom.dcmread(target)
    assert source_sha in ds.ImageComments and "Derived from a projection" in ds.ImageComments
    assert ds.ConversionType == "SYN"
    assert provenance(series, info)["image"]["derived_from"]["projection_of"] == source_sha
    plain = provenance(series, SyntheticImageInfo(0, seed=1))
    assert "derived_from" not in plain["image"] and "Derived" not in plain["description"]
    (tmp_path / "other.npy").write_bytes((out / "latent.npy").read_bytes())
    assert projection_source(tmp_path / "other.npy") is None  # no record beside it
    np.save(out / "latent.npy", np.zeros((1, demo.config.latent_size), np.float32) + 1)
    assert projection_source(out / "latent.npy") is None  # not the file the record lists


def test_cancel_writes_nothing_and_frees_the_folder(demo, phantom_file, tmp_path):
    from cxrgan_desktop.core.jobs import Cancelled
    from cxrgan_desktop.tasks.project import ProjectOptions, project_image

    cancel = threading.Event()
    seen = []

    def progress(fraction, message=""):
        seen.append(fraction)
        if len(seen) == 3:
            cancel.set()

    out = tmp_path / "p"
    with pytest.raises(Cancelled):
        project_image(phantom_file, demo, out, ProjectOptions(restarts=1, steps=50),
                      progress, cancel)
    assert len(seen) == 3 and sorted(p.name for p in out.iterdir()) == []
    project_image(phantom_file, demo, out, ProjectOptions(restarts=1, steps=0))
    assert (out / "projection.json").is_file()


def test_a_second_projection_needs_overwrite(demo, phantom_file, tmp_path):
    from cxrgan_desktop.core.output_lock import OutputFolderError
    from cxrgan_desktop.tasks.project import ProjectOptions, project_image

    out = tmp_path / "p"
    project_image(phantom_file, demo, out, ProjectOptions(restarts=1, steps=0))
    with pytest.raises(OutputFolderError, match="already holds a projection"):
        project_image(phantom_file, demo, out, ProjectOptions(restarts=1, steps=0))
    project_image(phantom_file, demo, out, ProjectOptions(restarts=1, steps=0, seed=3,
                                                         overwrite=True))
    assert json.loads((out / "projection.json").read_text())["settings"]["seed"] == 3


def test_a_file_that_is_not_an_image_is_named(tmp_path, capsys):
    from cxrgan_desktop.cli import main

    notes = tmp_path / "notes.png"
    notes.write_text("not a radiograph\n")
    assert main(["project", str(notes), "--model", DEMO, "--out", str(tmp_path / "p"),
                 "--steps", "1", "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "notes.png" in error and "cxrgan: error:" in error
    assert not (tmp_path / "p" / "projection.json").exists()
