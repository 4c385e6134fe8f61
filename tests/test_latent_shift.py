"""Latent shift (engine/latent_shift.py), its frame sets (tasks/latent_frames.py) and the
``cxrgan shift`` / ``cxrgan interpolate`` commands, on the bundled demo model and classifier
(64 px, loads in about a second; a path of 9 frames takes about 0.1 s on one thread).

Measured on the demo pair (Spearman correlation between lambda and the finding's probability,
9 frames, generate seeds 0..9 as start latents, index 0; scipy.stats.spearmanr):

- single direction (Cohen et al.'s, the default), lambda in [-5, 5] degrees: mean / minimum
  Cardiomegaly 0.983 / 0.883 (non-decreasing on 8 of 10), Effusion 0.983 / 0.883 (8 of 10),
  Pneumothorax 1.000 / 1.000 (10 of 10). Wider ranges bend away: [-10, 10] gives means
  0.858, 0.852, 0.988 and [-15, 15] 0.812, 0.777, 0.957 (the classifier's gradient turns
  within a few degrees on this model);
- recomputed direction (steps of at most 2 degrees), lambda in [-20, 20]: every one of the
  14 findings non-decreasing from start latents seeds 0, 1 and 2 (Spearman 1.000).

The tests hold: single direction at +-5 degrees, per finding, mean Spearman >= 0.95 and
minimum >= 0.80 (measured 0.983 and 0.883 at worst, less a margin); recomputed at +-20
degrees, non-decreasing for all three findings from seeds 0, 1, 2 (measured: all are).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from cxrgan_desktop.engine.checkpoints import load_generator
from cxrgan_desktop.engine.classifier.files import load_classifier
from cxrgan_desktop.engine.classifier.installed import resolve_classifier
from cxrgan_desktop.engine.latent_shift import preview_model, shift_path
from cxrgan_desktop.engine.render import Renderer, latents_for_seed
from cxrgan_desktop.store import zoo

FINDINGS = ("Cardiomegaly", "Effusion", "Pneumothorax")
LAMBDAS = np.linspace(-5.0, 5.0, 9)


@pytest.fixture(scope="module")
def demo():
    return load_generator(zoo.resolve_model("demo-phantom-64"))


@pytest.fixture(scope="module")
def demo_classifier():
    return load_classifier(resolve_classifier("demo-phantom-64-classifier"))


def _z(demo, seed: int, index: int = 0) -> np.ndarray:
    return latents_for_seed(seed, 1, demo.config.latent_size, start=index)[0]


def _arccos_deg(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = a64 @ b64 / np.linalg.norm(a64) / np.linalg.norm(b64)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


# ---- engine --------------------------------------------------------------------------------

def test_lambda_zero_frame_equals_the_plain_generate_exactly(demo, demo_classifier, tmp_path):
    from cxrgan_desktop.imaging.png16 import read_png16, to_uint16
    from cxrgan_desktop.tasks.generate import generate_to_folder, image_name

    z0 = _z(demo, seed=7, index=2)
    path = shift_path(demo, demo_classifier, "Effusion", z0, LAMBDAS)
    middle = path.frames[4]
    assert middle.position == 0.0
    assert np.array_equal(middle.z, z0)
    plain = Renderer(demo).render(z0[None])[0, 0]
    assert torch.equal(torch.from_numpy(middle.image), plain)
    # and the file `cxrgan generate --seed 7` writes for image 2 (one image per batch)
    generate_to_folder(demo, tmp_path, n=3, seed=7, batch_size=1)
    written = read_png16(tmp_path / image_name(2, 3))
    assert np.array_equal(np.round(written * 65535).astype(np.uint16),
                          to_uint16(middle.image))


@pytest.mark.parametrize("finding", FINDINGS)
def test_single_direction_shift_is_monotonic_in_the_finding(demo, demo_classifier, finding):
    correlations = []
    for seed in range(10):
        probabilities = shift_path(demo, demo_classifier, finding, _z(demo, seed),
                                   LAMBDAS).probability(finding)
        correlations.append(spearmanr(LAMBDAS, probabilities)[0])
    assert np.mean(correlations) >= 0.95, correlations
    assert np.min(correlations) >= 0.80, correlations


@pytest.mark.parametrize("finding", FINDINGS)
def test_recomputed_direction_is_non_decreasing_over_a_wider_range(demo, demo_classifier,
                                                                   finding):
    lambdas = np.linspace(-20.0, 20.0, 9)
    for seed in range(3):
        path = shift_path(demo, demo_classifier, finding, _z(demo, seed), lambdas,
                          recompute_gradient=True)
        probabilities = path.probability(finding)
        assert np.all(np.diff(probabilities) >= 0), (seed, probabilities)
        assert spearmanr(lambdas, probabilities)[0] == pytest.approx(1.0)
        # frames 5 degrees apart, steps of at most 2 degrees: 3 gradients per gap, 4 gaps
        # per side
        assert path.gradient_evaluations == 24
        for frame in path.frames:  # a bending path reaches at most |lambda| from z0
            assert frame.angle_deg <= abs(frame.position) + 1e-3
            assert np.linalg.norm(frame.z) == pytest.approx(np.linalg.norm(path.start),
                                                            rel=1e-5)


def test_single_direction_is_the_tangent_gradient_of_the_logit(demo, demo_classifier):
    """Checked against autograd through the training module (not the fused network the
    shift differentiates) and the frames' probabilities against a direct classifier call."""
    z0 = _z(demo, seed=3)
    path = shift_path(demo, demo_classifier, "Pneumothorax", z0, LAMBDAS)
    network = demo_classifier.classifier
    z = torch.from_numpy(z0[None].copy()).requires_grad_(True)
    logit = network(demo.adapter.apply(demo.generator(z)))[0,
                                                           network.label_index("Pneumothorax")]
    (gradient,) = torch.autograd.grad(logit, z)
    g = gradient[0].double().numpy()
    unit = z0 / np.linalg.norm(z0)
    g -= (g @ unit) * unit
    cosine = float(path.direction @ g / np.linalg.norm(g))
    assert cosine > 0.999
    assert path.gradient_evaluations == 1
    renderer = Renderer(demo)
    for frame in path.frames:
        assert np.linalg.norm(frame.z) == pytest.approx(np.linalg.norm(z0), rel=1e-6)
        assert _arccos_deg(z0, frame.z) == pytest.approx(abs(frame.position), abs=1e-3)
        assert frame.angle_deg == pytest.approx(abs(frame.position), abs=1e-3)
        direct = network.probabilities(renderer.render(frame.z[None])).numpy()[0]
        np.testing.assert_allclose(frame.probabilities, direct, rtol=0, atol=1e-6)
    assert path.labels == demo_classifier.labels
    assert path.probabilities.shape == (len(LAMBDAS), len(demo_classifier.labels))


def _hooked_truncation_gradient(demo, network, z0: np.ndarray, finding: str,
                                psi: float) -> np.ndarray:
    """The tangent gradient of the finding's logit through the *training* module truncated by
    a forward hook on its dense layer, with the prior mean averaged here from the generate
    recipe's latents (seed 24, 4096 of them): neither the renderer's nor LCO's wrapper.

    The pull acts after the LeakyReLU, so the hook returns the pre-activation whose
    LeakyReLU is ``mean + psi (LeakyReLU(a) - mean)`` (LeakyReLU is invertible)."""
    from cxrgan_desktop.engine.layers import pixel_norm

    generator = demo.generator
    slope = generator.config.leaky_slope
    with torch.no_grad():
        prior = torch.from_numpy(latents_for_seed(24, 4096, demo.config.latent_size))
        h = torch.nn.functional.leaky_relu(generator.latent_fc(pixel_norm(prior)), slope)
        mean = h.double().mean(dim=0).float()

    def pull(_module, _inputs, out):
        pulled = mean + psi * (torch.nn.functional.leaky_relu(out, slope) - mean)
        return torch.where(pulled >= 0, pulled, pulled / slope)

    handle = generator.latent_fc.register_forward_hook(pull)
    try:
        z = torch.from_numpy(z0[None].copy()).requires_grad_(True)
        logit = network(demo.adapter.apply(generator(z)))[0, network.label_index(finding)]
        (gradient,) = torch.autograd.grad(logit, z)
    finally:
        handle.remove()
    g = gradient[0].double().numpy()
    unit = z0 / np.linalg.norm(z0)
    return g - (g @ unit) * unit


def test_truncated_shift_moves_the_truncated_image_along_its_own_gradient(demo,
                                                                          demo_classifier):
    """psi 0.5: the lambda-0 frame is the truncated render bit for bit, the direction is the
    gradient through a truncated generator (measured: cosine 0.42 with the untruncated
    direction from this latent, so taking it at psi 1 would be a different path), and every
    frame's probabilities are the classifier's on that frame's truncated render."""
    from cxrgan_desktop.engine.latent_shift import finding_directions

    z0 = _z(demo, seed=5, index=1)
    lambdas = np.linspace(-5.0, 5.0, 5)
    path = shift_path(demo, demo_classifier, "Effusion", z0, lambdas, truncation=0.5)
    assert path.truncation == 0.5
    truncated = Renderer(demo, truncation=0.5)
    middle = path.frames[2]
    assert middle.position == 0.0 and np.array_equal(middle.z, z0)
    assert torch.equal(torch.from_numpy(middle.image), truncated.render(z0[None])[0, 0])
    assert not torch.equal(torch.from_numpy(middle.image), Renderer(demo).render(z0[None])[0, 0])
    network = demo_classifier.classifier
    g = _hooked_truncation_gradient(demo, network, z0, "Effusion", 0.5)
    assert float(path.direction @ g / np.linalg.norm(g)) > 0.999
    untruncated = shift_path(demo, demo_classifier, "Effusion", z0, [0.0]).direction
    assert float(path.direction @ untruncated) < 0.9
    for frame in path.frames:
        direct = network.probabilities(truncated.render(frame.z[None])).numpy()[0]
        np.testing.assert_allclose(frame.probabilities, direct, rtol=0, atol=1e-6)
    directions = finding_directions(demo, demo_classifier, ["Effusion"], z0, truncation=0.5)
    np.testing.assert_allclose(directions["Effusion"], path.direction, rtol=0, atol=1e-6)
    # psi 1 given explicitly is the untruncated path, frame for frame
    plain = shift_path(demo, demo_classifier, "Effusion", z0, lambdas)
    explicit = shift_path(demo, demo_classifier, "Effusion", z0, lambdas, truncation=1.0)
    assert np.array_equal(plain.images, explicit.images) and explicit.truncation == 1.0


def test_shift_at_psi_zero_is_refused_with_the_reason(demo, demo_classifier):
    from cxrgan_desktop.engine.latent_shift import finding_directions

    z0 = _z(demo, seed=0)
    with pytest.raises(ValueError, match="psi 0 every latent renders the same mean image"):
        shift_path(demo, demo_classifier, "Effusion", z0, LAMBDAS, truncation=0.0)
    with pytest.raises(ValueError, match="psi 0"):
        finding_directions(demo, demo_classifier, ["Effusion"], z0, truncation=0.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        shift_path(demo, demo_classifier, "Effusion", z0, LAMBDAS, truncation=1.5)


def test_shift_refuses_unknown_findings_and_wrong_latents(demo, demo_classifier):
    z0 = _z(demo, seed=0)
    with pytest.raises(ValueError, match="not one of this classifier's labels"):
        shift_path(demo, demo_classifier, "Fracture", z0, LAMBDAS)
    with pytest.raises(ValueError, match="values for this model"):
        shift_path(demo, demo_classifier, "Effusion", z0[:5], LAMBDAS)
    with pytest.raises(ValueError, match="finite"):
        shift_path(demo, demo_classifier, "Effusion", z0, [0.0, float("nan")])


def test_preview_model_renders_the_previous_stage_and_leaves_the_model_alone(demo):
    depth = demo.generator.current_depth
    smaller = preview_model(demo)
    assert demo.generator.current_depth == depth
    assert smaller.resolution == demo.resolution // 2
    z = latents_for_seed(1, 2, demo.config.latent_size)
    preview = Renderer(smaller).render(z)
    with torch.no_grad():  # the training module's own earlier stage
        generator = demo.generator
        raw = generator.to_image[depth - 1](generator.features(torch.from_numpy(z), depth - 1))
        expected = demo.adapter.apply(raw)
    assert preview.shape == (2, 1, demo.resolution // 2, demo.resolution // 2)
    torch.testing.assert_close(preview, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="levels"):
        preview_model(demo, levels=depth + 1)


# ---- frame sets ----------------------------------------------------------------------------

def _runs_of_distinct(frames8: list[np.ndarray]) -> int:
    """How many frames an animation holds once identical neighbours are merged."""
    return 1 + sum(not np.array_equal(a, b) for a, b in itertools.pairwise(frames8))


@pytest.fixture(scope="module")
def shift_set(demo, demo_classifier, tmp_path_factory):
    from cxrgan_desktop.tasks.latent_frames import LatentSource, shift_to_folder

    out = tmp_path_factory.mktemp("shift")
    z0 = _z(demo, seed=2, index=4)
    lambdas = np.linspace(-6.0, 6.0, 5)
    result = shift_to_folder(demo, demo_classifier, "Effusion", z0, lambdas, out,
                             source=LatentSource(seed=2, index=4))
    return out, result, z0, lambdas


def test_shift_set_writes_every_file_readably(shift_set, demo, demo_classifier):
    import hashlib
    import json

    import pydicom
    from PIL import Image

    from cxrgan_desktop import __version__
    from cxrgan_desktop.imaging.png16 import to_uint16

    out, result, z0, lambdas = shift_set
    assert all(path.is_file() for path in result.files)
    latents = np.load(out / "latents.npy")
    assert latents.shape == (5, demo.config.latent_size)
    assert np.array_equal(latents[2], z0)
    renderer = Renderer(demo)
    stored, frames8 = [], []
    for k in range(5):
        with Image.open(out / f"frame_{k:03d}.png") as picture:
            assert picture.mode == "I;16"
            pixels = np.asarray(picture).astype(np.uint16)
        image = renderer.render(latents[k][None])[0, 0].numpy()
        assert np.array_equal(pixels, to_uint16(image))  # the latent row renders the frame
        stored.append(pixels)
        frames8.append(np.round(image * 255).astype(np.uint8))
    with Image.open(out / "strip.png") as strip:
        assert strip.mode == "L" and strip.size == (5 * demo.resolution, demo.resolution)
        np.testing.assert_array_equal(np.asarray(strip), np.concatenate(frames8, axis=1))
    with Image.open(out / "animation.gif") as gif:
        assert gif.n_frames == _runs_of_distinct(frames8)
        assert gif.info.get("loop") == 0
    with Image.open(out / "animation.apng") as apng:
        assert apng.format == "PNG" and apng.is_animated
        assert apng.n_frames == _runs_of_distinct(frames8)
    series = set()
    for k in range(5):
        ds = pydicom.dcmread(out / "dicom" / f"frame_{k:03d}.dcm")
        series.add((ds.StudyInstanceUID, ds.SeriesInstanceUID))
        assert ds.InstanceNumber == k + 1
        assert ds.ConversionType == "SYN"
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "SYNTHETIC"]
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.PatientName) == "SYNTHETIC^CXRGAN" and ds.PatientID.startswith("SYN-")
        assert "SYNTHETIC IMAGE" in ds.ImageComments and "Effusion" in ds.ImageComments
        assert np.array_equal(ds.pixel_array, stored[k])
    assert len(series) == 1
    record = json.loads((out / "path.json").read_text())
    assert record["synthetic"] is True and record["kind"] == "shift"
    assert record["software"]["version"] == __version__
    assert record["model"]["sha256"] == hashlib.sha256(demo.path.read_bytes()).hexdigest()
    assert record["classifier"]["sha256"] == hashlib.sha256(
        demo_classifier.path.read_bytes()).hexdigest()
    assert record["finding"] == "Effusion"
    assert record["start"]["seed"] == 2 and record["start"]["index"] == 4
    assert record["positions"]["values"] == pytest.approx(list(lambdas))
    assert record["dicom"]["series_instance_uid"] == next(iter(series))[1]
    assert "derived" in record["derived_from"].lower() or "Synthetic" in record["derived_from"]


def test_frames_csv_matches_the_classifier_on_the_png_frames(shift_set, demo_classifier):
    import csv

    from cxrgan_desktop.imaging.png16 import read_png16

    out, _, _, lambdas = shift_set
    with open(out / "frames.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["lambda_deg"]) for r in rows] == pytest.approx(list(lambdas))
    labels = demo_classifier.labels
    assert list(rows[0])[5:] == list(labels)
    images = np.stack([read_png16(out / r["file"]) for r in rows])[:, None]
    direct = demo_classifier.classifier.probabilities(torch.from_numpy(images)).numpy()
    written = np.array([[float(r[label]) for label in labels] for r in rows])
    # 16-bit rounding moves a pixel by at most 1/131070: the probabilities by far less than
    # this tolerance (measured on a 9-frame shift of the demo pair: at most 1.6e-5)
    np.testing.assert_allclose(written, direct, rtol=0, atol=2e-4)
    for r in rows:
        assert float(r["angle_deg"]) == pytest.approx(abs(float(r["lambda_deg"])), abs=1e-4)
        assert 0.0 <= float(r["angle_percentile"]) < 1e-6  # 6 degrees: nearer than any draw


def test_cancel_leaves_no_files_under_final_names(demo, demo_classifier, tmp_path):
    import threading

    from cxrgan_desktop.core.jobs import Cancelled
    from cxrgan_desktop.tasks.latent_frames import LatentSource, shift_to_folder

    for when in (0.3, 0.7, 0.95):  # while computing, while staging frames, animations
        out = tmp_path / f"at-{when}"
        cancel = threading.Event()
        seen = []

        def progress(fraction, message="", cancel=cancel, when=when, seen=seen):
            seen.append(fraction)
            if fraction >= when:
                cancel.set()

        with pytest.raises(Cancelled):
            shift_to_folder(demo, demo_classifier, "Effusion", _z(demo, 1), LAMBDAS, out,
                            source=LatentSource(seed=1, index=0), progress=progress,
                            cancel=cancel)
        assert max(seen) >= when
        assert sorted(p.name for p in out.rglob("*")) == []


def test_earlier_set_is_refused_then_overwritten_keeping_foreign_files(demo, demo_classifier,
                                                                       tmp_path):
    import json

    from cxrgan_desktop.core.output_lock import OutputFolderError
    from cxrgan_desktop.tasks.latent_frames import LatentSource, shift_to_folder

    def run(frames: int, **options):
        return shift_to_folder(demo, demo_classifier, "Pneumothorax", _z(demo, 5),
                               np.linspace(-3, 3, frames), tmp_path,
                               source=LatentSource(seed=5, index=0), **options)

    run(5)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="earlier frame set"):
        run(3)
    run(3, overwrite=True, ping_pong=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.glob("frame_*.png")) == [
        "frame_000.png", "frame_001.png", "frame_002.png"]
    assert sorted(p.name for p in (tmp_path / "dicom").iterdir()) == [
        "frame_000.dcm", "frame_001.dcm", "frame_002.dcm"]
    record = json.loads((tmp_path / "path.json").read_text())
    assert record["animation"]["ping_pong"] is True
    assert record["animation"]["sequence"] == 4  # 0 1 2 1


def test_interpolation_set_ends_are_the_generated_images(demo, tmp_path):
    from cxrgan_desktop.imaging.png16 import read_png16
    from cxrgan_desktop.tasks.generate import generate_to_folder, image_name
    from cxrgan_desktop.tasks.latent_frames import LatentSource, interpolate_to_folder

    size = demo.config.latent_size
    z_a, z_b = _z(demo, 9, 0), _z(demo, 9, 1)
    interpolate_to_folder(demo, z_a, z_b, 4, tmp_path / "morph",
                          source=LatentSource(seed=9, index=0),
                          end=LatentSource(seed=9, index=1))
    generate_to_folder(demo, tmp_path / "plain", n=2, seed=9, batch_size=1)
    for frame, index in ((0, 0), (3, 1)):
        assert np.array_equal(read_png16(tmp_path / "morph" / f"frame_{frame:03d}.png"),
                              read_png16(tmp_path / "plain" / image_name(index, 2)))
    latents = np.load(tmp_path / "morph" / "latents.npy")
    assert latents.shape == (4, size)
    assert np.array_equal(latents[0], z_a) and np.array_equal(latents[-1], z_b)
    header = (tmp_path / "morph" / "frames.csv").read_text().splitlines()[0]
    assert header == "frame,file,t,angle_deg,angle_percentile"


def test_truncated_shift_set_records_psi_and_frame_zero_is_the_truncated_generate(
        shift_set, demo, demo_classifier, tmp_path):
    """The set at psi 0.5 against the file ``generate --truncation 0.5`` writes (one image
    per batch), path.json's truncation record, and psi in every DICOM instance (pydicom);
    the untruncated set records psi 1 and its DICOM says nothing of truncation."""
    import json

    import pydicom

    from cxrgan_desktop.imaging.png16 import read_png16, to_uint16
    from cxrgan_desktop.tasks.generate import generate_to_folder, image_name
    from cxrgan_desktop.tasks.latent_frames import LatentSource, shift_to_folder

    z0 = _z(demo, seed=2, index=4)
    lambdas = np.linspace(-4.0, 4.0, 3)
    out = tmp_path / "shift"
    shift_to_folder(demo, demo_classifier, "Effusion", z0, lambdas, out,
                    source=LatentSource(seed=2, index=4), truncation=0.5)
    generate_to_folder(demo, tmp_path / "plain", n=5, seed=2, batch_size=1, truncation=0.5)
    assert np.array_equal(read_png16(out / "frame_001.png"),
                          read_png16(tmp_path / "plain" / image_name(4, 5)))
    record = json.loads((out / "path.json").read_text())
    assert record["truncation"]["psi"] == 0.5
    assert record["truncation"]["mean_samples"] == 4096
    assert "truncation psi 0.5" in record["derived_from"]
    latents = np.load(out / "latents.npy")
    truncated = Renderer(demo, truncation=0.5)
    for k in range(3):
        image = truncated.render(latents[k][None])[0, 0].numpy()
        assert np.array_equal(np.round(read_png16(out / f"frame_{k:03d}.png") * 65535)
                              .astype(np.uint16), to_uint16(image))
        ds = pydicom.dcmread(out / "dicom" / f"frame_{k:03d}.dcm")
        assert "truncation psi 0.5" in str(ds.ImageComments)
    plain_out = shift_set[0]
    assert json.loads((plain_out / "path.json").read_text())["truncation"]["psi"] == 1.0
    assert "truncation" not in str(pydicom.dcmread(plain_out / "dicom" / "frame_000.dcm")
                                   .ImageComments)


# ---- command line --------------------------------------------------------------------------

def test_cli_shift_and_interpolate(tmp_path, capsys):
    import json

    from cxrgan_desktop.cli import main

    code = main(["shift", "--finding", "Effusion", "--seed", "0", "--index", "1",
                 "--range=-4,4", "--frames", "3", "--out", str(tmp_path / "s"),
                 "--device", "cpu"])
    assert code == 0
    record = json.loads((tmp_path / "s" / "path.json").read_text())
    assert record["model"]["name"] == "demo-phantom-64"  # the bundled default
    assert record["positions"]["values"] == [-4.0, 0.0, 4.0]
    assert "p(Effusion)" in capsys.readouterr().out
    np.save(tmp_path / "z.npy", latents_for_seed(0, 3, 128))
    code = main(["interpolate", "--latents", str(tmp_path / "z.npy"), "--row", "2",
                 "--to-seed", "0", "--to-index", "1", "--frames", "3",
                 "--classifier", "demo-phantom-64-classifier", "--out", str(tmp_path / "i"),
                 "--device", "cpu"])
    assert code == 0
    record = json.loads((tmp_path / "i" / "path.json").read_text())
    assert record["start"]["latents_file"] == "z.npy" and record["start"]["row"] == 2
    assert record["end"]["index"] == 1
    assert set(record["frames"][1]["probabilities"]) == set(record["classifier"]["labels"])
    # a second run into the same folder is refused with a one-line error
    assert main(["interpolate", "--seed", "0", "--index", "0", "--to-index", "1",
                 "--frames", "2", "--out", str(tmp_path / "i")]) == 2
    assert "earlier frame set" in capsys.readouterr().err


def test_cli_truncation_for_shift_and_interpolate(tmp_path, capsys):
    """--truncation reaches the frames: shift at psi 0.5 records it; interpolate at psi 0
    gives the mean image in every frame, so every frame's probabilities are the same; psi 0
    for a shift and psi above 1 are refused before anything is written."""
    import json

    from cxrgan_desktop.cli import main

    assert main(["shift", "--finding", "Effusion", "--seed", "0", "--index", "1",
                 "--range=-3,3", "--frames", "3", "--truncation", "0.5", "--out",
                 str(tmp_path / "s"), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "s" / "path.json").read_text())
    assert record["truncation"]["psi"] == 0.5
    assert main(["interpolate", "--seed", "0", "--index", "0", "--to-index", "1",
                 "--frames", "4", "--truncation", "0", "--classifier",
                 "demo-phantom-64-classifier", "--out", str(tmp_path / "i"),
                 "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "i" / "path.json").read_text())
    assert record["truncation"]["psi"] == 0.0
    first = record["frames"][0]["probabilities"]
    assert all(frame["probabilities"] == first for frame in record["frames"])
    from cxrgan_desktop.imaging.png16 import read_png16

    images = [read_png16(tmp_path / "i" / f"frame_{k:03d}.png") for k in range(4)]
    assert all(np.array_equal(image, images[0]) for image in images)
    capsys.readouterr()
    assert main(["shift", "--finding", "Effusion", "--seed", "0", "--index", "1",
                 "--truncation", "0", "--out", str(tmp_path / "z")]) == 2
    assert "nothing to shift" in capsys.readouterr().err
    assert main(["interpolate", "--seed", "0", "--index", "0", "--to-index", "1",
                 "--truncation", "1.5", "--out", str(tmp_path / "x")]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "z").exists() and not (tmp_path / "x").exists()


def test_cli_range_parsing():
    from cxrgan_desktop.cli.common import UserError
    from cxrgan_desktop.cli.latent import parse_range

    assert parse_range("-10,10") == (-10.0, 10.0)
    assert parse_range("7.5") == (-7.5, 7.5)
    assert parse_range("0,20") == (0.0, 20.0)
    for bad in ("10,-10", "a,b", "1,2,3", "-200,10"):
        with pytest.raises(UserError):
            parse_range(bad)


def test_slider_directions_reproduce_the_shift_frames(demo, demo_classifier):
    from cxrgan_desktop.engine.latent_shift import combine_shifts, finding_directions

    z0 = _z(demo, seed=4)
    directions = finding_directions(demo, demo_classifier, FINDINGS, z0)
    for finding in FINDINGS:
        path = shift_path(demo, demo_classifier, finding, z0, [-3.0, 0.0, 4.0])
        np.testing.assert_allclose(directions[finding], path.direction, rtol=0, atol=1e-6)
        for frame in path.frames:
            moved = combine_shifts(z0, directions, {finding: frame.position})
            np.testing.assert_allclose(moved, frame.z, rtol=0, atol=1e-5)
    assert np.array_equal(combine_shifts(z0, directions, {f: 0.0 for f in FINDINGS}), z0)
    both = combine_shifts(z0, directions, {"Effusion": 5.0, "Pneumothorax": 5.0})
    u, v = directions["Effusion"], directions["Pneumothorax"]
    expected = np.degrees(np.linalg.norm(np.radians(5.0) * (u + v)))  # exponential map
    assert _arccos_deg(z0, both) == pytest.approx(expected, abs=1e-3)
    assert np.linalg.norm(both) == pytest.approx(np.linalg.norm(z0), rel=1e-6)
    with pytest.raises(ValueError, match="no direction"):
        combine_shifts(z0, directions, {"Edema": 1.0})


def test_cli_shift_from_a_projected_latent_labels_every_frame_derived(tmp_path):
    import hashlib
    import json

    import pydicom

    from cxrgan_desktop.cli import main
    from cxrgan_desktop.tasks.project import FORMAT, LATENT_NAME, RECORD_NAME

    folder = tmp_path / "projection"
    folder.mkdir()
    latent = folder / LATENT_NAME
    np.save(latent, latents_for_seed(3, 1, 128)[0])
    source = "ab" * 32  # the radiograph's SHA-256, as cxrgan project records it
    (folder / RECORD_NAME).write_text(json.dumps({
        "format": FORMAT, "source": {"sha256": source},
        "files": {LATENT_NAME: hashlib.sha256(latent.read_bytes()).hexdigest()}}))
    assert main(["shift", "--finding", "Effusion", "--latents", str(latent), "--range", "3",
                 "--frames", "3", "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "s" / "path.json").read_text())
    assert record["start"]["derived_from"]["projection_of"] == source
    assert source in record["derived_from"]
    for k in range(3):
        ds = pydicom.dcmread(tmp_path / "s" / "dicom" / f"frame_{k:03d}.dcm")
        assert "projection of a real radiograph" in ds.ImageComments
        assert source in ds.ImageComments and ds.ConversionType == "SYN"
