"""Truncation psi (engine/truncation.py) on the bundled demo model: psi = 1 is today's
images bit for bit, psi = 0 the mean image, the mean computed as documented, and psi
recorded by generate, LCO, the archive and the study build (old folders still resume)."""

import copy
import itertools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrgan_desktop.core.output_lock import OutputFolderError
from cxrgan_desktop.engine.checkpoints import load_generator
from cxrgan_desktop.engine.classifier.files import load_classifier
from cxrgan_desktop.engine.classifier.installed import resolve_classifier
from cxrgan_desktop.engine.inference import InferenceGenerator
from cxrgan_desktop.engine.lco import (
    DifferentiableGenerator,
    LCORequest,
    LCOSettings,
    LCOTarget,
    optimise,
)
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.engine.render import Renderer, latents_for_seed
from cxrgan_desktop.engine.truncation import (
    MEAN_SAMPLES,
    MEAN_SEED,
    TruncatedGenerator,
    check_psi,
    mean_activation,
    prior_latents,
)
from cxrgan_desktop.imaging.png16 import read_png16
from cxrgan_desktop.store import zoo
from cxrgan_desktop.tasks.archive import build_archive, repeated_target
from cxrgan_desktop.tasks.generate import MANIFEST_NAME, generate_to_folder

DEMO = "demo-phantom-64"


@pytest.fixture(scope="module")
def demo():
    return load_generator(zoo.resolve_model(DEMO))


@pytest.fixture(scope="module")
def demo_classifier():
    return load_classifier(resolve_classifier("demo-phantom-64-classifier"))


def _today(model, latents: np.ndarray) -> torch.Tensor:
    """What Renderer.render computed before truncation existed: the fast network and the
    output adapter, nothing else."""
    net = InferenceGenerator(model.generator).eval()
    with torch.inference_mode():
        return model.adapter.apply(net(torch.from_numpy(latents)).float())


def test_psi_is_checked():
    assert check_psi(0) == 0.0 and check_psi(1) == 1.0 and check_psi(np.float32(0.5)) == 0.5
    for bad in (1.01, -0.1, math.nan, math.inf, True, "0.5", None):
        with pytest.raises(ValueError, match="between 0 and 1"):
            check_psi(bad)


def test_psi_one_is_bit_identical_to_today(demo):
    z = latents_for_seed(3, 5, demo.config.latent_size)
    expected = _today(demo, z)
    assert torch.equal(Renderer(demo).render(z), expected)
    truncated = Renderer(demo, truncation=1.0)
    assert truncated.net.__class__ is InferenceGenerator  # today's network, not a wrapper
    assert torch.equal(truncated.render(z), expected)
    assert not torch.equal(Renderer(demo, truncation=0.9).render(z), expected)


def test_wrapper_repeats_the_networks_steps_exactly(demo):
    """At psi = 1 around a zero mean (h' = 0 + 1 * (h - 0) = h exactly) the wrapper's copy of
    the steps after the dense layer must give the wrapped network's output bit for bit:
    fast and differentiable paths, and the training module in the middle of a fade-in."""
    z = torch.from_numpy(latents_for_seed(4, 3, demo.config.latent_size))
    fast = InferenceGenerator(demo.generator).eval()
    zero = torch.zeros(demo.config.channels[0] * 16)
    wrapped = TruncatedGenerator(fast, zero, 1.0)
    assert torch.equal(wrapped(z), fast(z))
    assert torch.equal(wrapped.differentiable(z), fast.differentiable(z))

    torch.manual_seed(0)
    fading = Generator(PGGANConfig(latent_size=16, channels=(16, 8, 8)), depth=1)
    fading.grow()
    fading.set_alpha(0.3)
    small = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.equal(TruncatedGenerator(fading, torch.zeros(256), 1.0)(small),
                           fading(small))


def test_mean_is_the_documented_average(demo):
    """An independent float64 average over the documented latents (numpy's generator with
    [MEAN_SEED, i], i < MEAN_SAMPLES), through the training module's dense layer."""
    size = demo.config.latent_size
    z = np.stack([np.random.default_rng([MEAN_SEED, i]).standard_normal(size)
                  for i in range(MEAN_SAMPLES)])
    assert np.array_equal(prior_latents(MEAN_SAMPLES, size), z.astype(np.float32))
    g = copy.deepcopy(demo.generator).double()
    with torch.no_grad():
        z64 = torch.from_numpy(z.astype(np.float32).astype(np.float64))
        normed = z64 / torch.sqrt(z64.square().mean(dim=1, keepdim=True) + 1e-8)
        h = F.leaky_relu(g.latent_fc(normed), demo.config.leaky_slope)
    expected = h.mean(dim=0).numpy()
    mean = mean_activation(demo).numpy()
    assert mean.shape == (demo.config.channels[0] * 16,)
    np.testing.assert_allclose(mean, expected, rtol=0, atol=2e-6)
    # not the dense layer's bias (the mean before the LeakyReLU, over a symmetric prior)
    assert np.abs(mean - demo.generator.latent_fc.bias.detach().numpy()).max() > 0.05
    mean_activation(demo)[:] = 0  # a caller's change does not reach the cache
    assert np.array_equal(mean_activation(demo).numpy(), mean)


def test_truncated_images_follow_the_definition(demo):
    """psi = 0.5 through the renderer's fast path against h' = mean + psi (h - mean) put
    through the training module by hand."""
    psi, size = 0.5, demo.config.latent_size
    z = torch.from_numpy(latents_for_seed(8, 3, size))
    g, slope = demo.generator, demo.config.leaky_slope
    mean = mean_activation(demo)
    with torch.no_grad():
        normed = z / torch.sqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        h = F.leaky_relu(g.latent_fc(normed), slope)
        x = (mean + psi * (h - mean)).reshape(3, demo.config.channels[0], 4, 4)
        x = F.leaky_relu(g.init_conv(x), slope)
        x = x / torch.sqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)
        for block in g.blocks[:g.current_depth]:
            x = block(x)
        expected = demo.adapter.apply(g.to_image[g.current_depth](x))
    got = Renderer(demo, truncation=psi).render(z.numpy())
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=1e-5)


def test_psi_zero_gives_one_image_and_spread_falls_with_psi(demo):
    z = latents_for_seed(1, 12, demo.config.latent_size)
    zero = Renderer(demo, truncation=0.0).render(z).numpy()
    assert np.abs(zero - zero[0]).max() <= 1e-6
    spreads = [float(Renderer(demo, truncation=psi).render(z).numpy().std(axis=0).mean())
               for psi in (1.0, 0.7, 0.4, 0.0)]
    assert all(a > b for a, b in itertools.pairwise(spreads)), spreads
    assert spreads[-1] <= 1e-6 < spreads[0] / 2


def _pngs(folder):
    return [read_png16(p) for p in sorted(folder.glob("img_*.png"))]


def test_generate_records_psi_and_psi_one_writes_todays_files(demo, tmp_path):
    plain = generate_to_folder(demo, tmp_path / "plain", n=3, seed=5)
    one = generate_to_folder(demo, tmp_path / "one", n=3, seed=5, truncation=1.0)
    half = generate_to_folder(demo, tmp_path / "half", n=3, seed=5, truncation=0.5)
    for a, b in zip(_pngs(plain.out_dir), _pngs(one.out_dir), strict=True):
        assert np.array_equal(a, b)
    today = _today(demo, latents_for_seed(5, 3, 128))[:, 0].numpy().astype(np.float64)
    expected = np.round(np.clip(today, 0, 1) * 65535)  # 16-bit PNG's definition
    assert np.array_equal(np.round(np.stack(_pngs(plain.out_dir)) * 65535.0), expected)
    assert not np.array_equal(np.stack(_pngs(half.out_dir)), np.stack(_pngs(plain.out_dir)))
    for result, psi in ((plain, 1.0), (one, 1.0), (half, 0.5)):
        manifest = json.loads(result.manifest.read_text())
        assert manifest["truncation"]["psi"] == psi
        assert manifest["truncation"]["mean_samples"] == MEAN_SAMPLES
        assert manifest["truncation"]["mean_seed"] == MEAN_SEED
        assert manifest["recipe"]["truncation"] == psi


def test_old_generate_manifest_without_psi_resumes(demo, tmp_path):
    out = tmp_path / "old"
    generate_to_folder(demo, out, n=4, seed=2)
    reference = _pngs(out)
    path = out / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    del manifest["truncation"], manifest["recipe"]["truncation"]  # as written before psi
    manifest["images"] = manifest["images"][:2]
    manifest["complete"] = False
    path.write_text(json.dumps(manifest))
    (out / "img_00002.png").unlink()
    with pytest.raises(OutputFolderError, match="truncation"):
        generate_to_folder(demo, out, n=4, seed=2, resume=True, truncation=0.5)
    result = generate_to_folder(demo, out, n=4, seed=2, resume=True)
    assert len(result.files) == 4
    assert all(np.array_equal(a, b) for a, b in zip(_pngs(out), reference, strict=True))
    assert json.loads(path.read_text())["truncation"]["psi"] == 1.0


def test_lco_honours_psi(demo, demo_classifier):
    target = LCOTarget(present=("Cardiomegaly",), threshold=0.99)
    requests = [LCORequest(k, target, 7) for k in range(3)]
    settings = LCOSettings(steps=3, restarts=0, learning_rate=0.1, batch_size=3,
                           snapshot_every=0)
    mean_image = Renderer(demo, truncation=0.0).render(
        latents_for_seed(0, 1, demo.config.latent_size))[0, 0].numpy()
    results = optimise(demo, demo_classifier.classifier, requests, settings, truncation=0.0)
    for result in results:
        np.testing.assert_allclose(result.image, mean_image, rtol=0, atol=1e-5)
    plain = DifferentiableGenerator(demo)
    assert plain.network.__class__ is InferenceGenerator  # psi = 1: the network as before
    half = DifferentiableGenerator(demo, truncation=0.5)
    z = torch.from_numpy(latents_for_seed(9, 2, demo.config.latent_size))
    np.testing.assert_allclose(half(z).detach().numpy(),
                               Renderer(demo, truncation=0.5).render(z.numpy()).numpy(),
                               rtol=0, atol=1e-5)
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(half(z).sum(), z)
    assert grad.abs().max() > 0  # the truncation is inside the differentiated pass


def test_archive_records_psi_and_an_old_archive_resumes(demo, demo_classifier, tmp_path):
    target = LCOTarget(present=("Cardiomegaly",), threshold=0.2)
    settings = LCOSettings(steps=2, restarts=0, batch_size=2, snapshot_every=0)
    out = tmp_path / "half"
    build_archive(demo, demo_classifier, repeated_target(target, 2, 4), out,
                  settings=settings, truncation=0.5)
    assert json.loads((out / "archive.json").read_text())["truncation"] == 0.5
    assert json.loads((out / "manifest.json").read_text())["truncation"]["psi"] == 0.5
    for k in range(2):
        assert json.loads((out / f"lco_{k:05d}.json").read_text())["lco"]["truncation"] == 0.5
    with pytest.raises(OutputFolderError, match="truncation"):
        build_archive(demo, demo_classifier, repeated_target(target, 2, 4), out,
                      settings=settings)

    old = tmp_path / "old"
    build_archive(demo, demo_classifier, repeated_target(target, 2, 4), old,
                  settings=settings)
    plan_file = old / "archive.json"
    header = json.loads(plan_file.read_text())
    assert header.pop("truncation") == 1.0
    plan_file.write_text(json.dumps(header))  # as written before psi
    record = json.loads((old / "lco_00001.json").read_text())
    (old / "lco_00001.json").unlink()
    summary = build_archive(demo, demo_classifier, repeated_target(target, 2, 4), old,
                            settings=settings)
    assert summary.requested == 2 and len(summary.new_results) == 1
    again = json.loads((old / "lco_00001.json").read_text())
    assert again["lco"]["z"] == record["lco"]["z"]
    assert json.loads((old / "manifest.json").read_text())["truncation"]["psi"] == 1.0


# -- the command line ---------------------------------------------------------------------------

def test_cli_generate_truncation(demo, tmp_path, capsys):
    from cxrgan_desktop.cli import main

    out = tmp_path / "g"
    assert main(["generate", "--model", DEMO, "--n", "3", "--seed", "6", "--truncation",
                 "0.4", "--out", str(out)]) == 0
    assert json.loads((out / MANIFEST_NAME).read_text())["truncation"]["psi"] == 0.4
    expected = Renderer(demo, truncation=0.4).render(latents_for_seed(6, 3, 128))[:, 0]
    expected = np.round(np.clip(expected.numpy().astype(np.float64), 0, 1) * 65535)
    assert np.array_equal(np.round(np.stack(_pngs(out)) * 65535.0), expected)
    assert "truncation psi 0.4" in capsys.readouterr().err
    for bad in ("1.5", "-0.2", "nan"):
        assert main(["generate", "--model", DEMO, "--n", "1", "--truncation", bad,
                     "--out", str(tmp_path / "bad")]) == 2
        assert "--truncation must be between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    # the default records psi = 1 and resumes a folder written before psi existed
    plain = tmp_path / "plain"
    assert main(["generate", "--model", DEMO, "--n", "2", "--out", str(plain)]) == 0
    manifest = json.loads((plain / MANIFEST_NAME).read_text())
    assert manifest["truncation"]["psi"] == 1.0
    del manifest["truncation"], manifest["recipe"]["truncation"]
    (plain / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert main(["generate", "--model", DEMO, "--n", "2", "--resume", "--out",
                 str(plain)]) == 0


def test_cli_lco_truncation_zero_gives_the_mean_image(demo, tmp_path):
    from cxrgan_desktop.cli import main

    out = tmp_path / "lco"
    assert main(["lco", "--model", DEMO, "--classifier", "demo-phantom-64-classifier",
                 "--labels", "Cardiomegaly", "--threshold", "0.01", "--n", "2", "--steps",
                 "1", "--restarts", "0", "--truncation", "0", "--out", str(out)]) == 0
    mean_image = Renderer(demo, truncation=0.0).render(latents_for_seed(0, 1, 128))[0, 0]
    for k in range(2):
        assert json.loads((out / f"lco_{k:05d}.json").read_text())["lco"]["truncation"] == 0
        np.testing.assert_allclose(read_png16(out / f"lco_{k:05d}.png"), mean_image.numpy(),
                                   rtol=0, atol=1e-4)
    assert json.loads((out / "manifest.json").read_text())["truncation"]["psi"] == 0.0


def test_study_build_from_a_model_records_psi(phantom_study_sources, demo, tmp_path):
    from cxrgan_desktop.cli import main
    from cxrgan_desktop.study.key import read_key
    from cxrgan_desktop.tasks.study_build import StudyPlan

    real, synthetic = phantom_study_sources(6, 64, (1, 2))
    out = tmp_path / "study"
    assert main(["study", "build", "--real", str(real), "--model", DEMO, "--n-real", "3",
                 "--n-synthetic", "3", "--size", "64", "--seed", "2", "--truncation", "0.5",
                 "--out", str(out)]) == 0
    key = read_key(out / "study.key.json")
    assert key.built["truncation"] == 0.5
    drawn = sorted(c.source for c in key.cases.values() if c.truth == "synthetic")
    assert drawn == [f"model:{DEMO}#seed2/{i} psi=0.5" for i in range(3)]
    with pytest.raises(ValueError, match="truncation applies to images drawn from a model"):
        StudyPlan([str(real)], 3, 3, synthetic=[str(synthetic)], truncation=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        StudyPlan([str(real)], 3, 3, model=DEMO, truncation=1.2)


# -- the window ---------------------------------------------------------------------------------

def test_window_generates_truncated_and_remembers_psi(main_window, qtbot, demo):
    pytest.importorskip("pytestqt")
    from cxrgan_desktop.core.settings import load_settings
    from cxrgan_desktop.gui.shell.main_window import MainWindow

    panel = main_window.generate_panel
    assert panel.model_box.currentText() == DEMO
    assert panel.truncation.value() == 1.0  # default: no truncation
    assert (panel.truncation.minimum(), panel.truncation.maximum(),
            panel.truncation.singleStep()) == (0.0, 1.0, 0.05)
    assert "diverse" in panel.truncation.toolTip()
    panel.count.setValue(3)
    panel.random_seed.setChecked(False)
    panel.seed.setValue(4)
    panel.truncation.setValue(0.0)
    panel.generate_button.click()
    qtbot.waitUntil(lambda: main_window.gallery.count() == 3, timeout=30_000)
    qtbot.waitUntil(panel.generate_button.isEnabled, timeout=10_000)
    entries = main_window.gallery.entries()
    assert [e.title for e in entries] == [f"seed 4 #{i} \N{GREEK SMALL LETTER PSI}0.00"
                                          for i in range(3)]
    assert all(e.details["truncation"] == 0.0 for e in entries)
    manifest = json.loads((entries[0].path.parent / MANIFEST_NAME).read_text())
    assert manifest["truncation"]["psi"] == 0.0
    images = [read_png16(e.path) for e in entries]
    mean_image = Renderer(demo, truncation=0.0).render(latents_for_seed(4, 1, 128))[0, 0]
    for image in images:
        np.testing.assert_allclose(image, mean_image.numpy(), rtol=0, atol=1 / 65535)

    panel.truncation.setValue(0.7)
    main_window.close()
    assert load_settings().generate_truncation == 0.7
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.generate_panel.truncation.value() == 0.7
    qtbot.waitUntil(lambda: not again._device_probe.is_running(), timeout=20_000)
