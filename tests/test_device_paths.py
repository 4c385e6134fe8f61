"""The device paths, on the device named by ``CXRGAN_TEST_DEVICE`` (default ``cpu``).

Why this file exists: the rest of the suite runs on the CPU only, so nothing exercised the
CUDA code paths (half-precision rendering, mixed-precision training, LCO and FID features on a
GPU, DDP with CUDA tensors). ``scripts/gpu_check.sh --device cuda`` runs this file with
``CXRGAN_TEST_DEVICE=cuda`` on a GPU machine; CI runs it on the CPU, where every test must pass
(or skip with its reason) deterministically. A device that is asked for but absent skips the
whole file with the reason; an unknown name fails it (a typo must not pass as "skipped").

Every model is tiny and built here with fixed seeds (16-32 px, a few steps), so the file stays
within about 30 s on a loaded 2-core CPU: no phantom training, no downloads.

    CXRGAN_TEST_DEVICE=cuda pytest -q tests/test_device_paths.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrgan_desktop.engine.checkpoints import LoadedGenerator, load_generator
from cxrgan_desktop.engine.checkpoints.output import OutputAdapter
from cxrgan_desktop.engine.classifier.model import ClassifierSpec, PathologyClassifier
from cxrgan_desktop.engine.devices import (
    DEVICE_CHOICES,
    DeviceError,
    describe_device,
    resolve_device,
)
from cxrgan_desktop.engine.lco import LCORequest, LCOSettings, LCOTarget, optimise
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.engine.render import Renderer, latents_for_seed
from cxrgan_desktop.engine.training.config import TrainConfig
from cxrgan_desktop.engine.training.loop import TrainingData, train
from cxrgan_desktop.metrics.fid_features import FeatureExtractor
from cxrgan_desktop.metrics.inception import build_fid_inception

ROOT = Path(__file__).resolve().parents[1]
DEVICE_NAME = os.environ.get("CXRGAN_TEST_DEVICE", "cpu").strip().lower() or "cpu"
FID_REFERENCE = ROOT / "tests" / "reference" / "fid_reference_features.npz"
LABELS = ("Cardiomegaly", "Effusion", "Pneumothorax")

# Tolerances, in units of the [0, 1] image unless said otherwise.
# float32 on a GPU against float32 on the CPU: cuDNN runs convolutions in TF32 by default
# (10-bit mantissa, like float16), so the same bound as float16 applies.
FLOAT32_DEVICE_VS_CPU = 0.02
# Reduced precision against float32 on the same device, max and mean absolute error.
# float16 (10-bit mantissa): tests/test_inference.py measured max 0.0093, mean 0.00035 on a
# larger network. bfloat16 (7-bit mantissa) is 8x coarser per operation.
HALF_TOLERANCE = {"float16": (0.02, 0.001), "bfloat16": (0.1, 0.01)}
# FID features against pytorch-fid's on the same random weights, max abs / max abs feature
# (TF32 off; the CPU run shows about 1e-6: batch norm folded, channels-last).
FID_RELATIVE = 1e-4


def _resolve_or_skip() -> torch.device:
    """The device under test; skip when it is absent, fail when its name is unknown."""
    known = DEVICE_NAME in DEVICE_CHOICES or DEVICE_NAME.startswith("cuda:")
    if not known:
        pytest.fail(f"CXRGAN_TEST_DEVICE={DEVICE_NAME!r} is not a device name; use one of "
                    f"{', '.join(DEVICE_CHOICES)} or cuda:N")
    try:
        return resolve_device(DEVICE_NAME)
    except DeviceError as error:
        pytest.skip(f"CXRGAN_TEST_DEVICE={DEVICE_NAME!r} is not available here: {error}")


@pytest.fixture(scope="module", params=[DEVICE_NAME])
def device(request) -> torch.device:
    """Parametrised so that the test ids name the device ([cpu], [cuda])."""
    return _resolve_or_skip()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tiny_model(seed: int = 0, latent: int = 32, channels: tuple[int, ...] = (32, 32, 16, 16)
               ) -> LoadedGenerator:
    """A fresh PGGAN generator (4 -> 32 px) with fixed random weights, as a loaded model.

    Fresh on every call: Renderer, LCO and training move modules to the device in place."""
    torch.manual_seed(seed)
    generator = Generator(PGGANConfig(latent_size=latent, channels=channels)).eval()
    return LoadedGenerator(generator, OutputAdapter(1, "signed"), Path("tiny-random"), "0" * 64,
                           "tiny-random", "native")


def tiny_classifier(seed: int = 1) -> PathologyClassifier:
    """A densenet-small at 32 px (its minimum input) with fixed random weights."""
    torch.manual_seed(seed)
    return PathologyClassifier(ClassifierSpec("densenet-small", LABELS, 32)).eval()


# -- generation ------------------------------------------------------------------------------

def test_generation_float32_on_the_device_agrees_with_the_cpu(device):
    z = latents_for_seed(0, 4, 32)
    on_cpu = Renderer(tiny_model(), "cpu").render(z)
    images = Renderer(tiny_model(), device).render(z)
    assert images.shape == (4, 1, 32, 32) and images.dtype == torch.float32
    assert images.device.type == "cpu"  # rendered images always come back to the host
    assert bool(torch.isfinite(images).all()) and 0.0 <= images.min() <= images.max() <= 1.0
    assert images.std() > 0.01  # not a constant image
    if device.type == "cpu":
        torch.testing.assert_close(images, on_cpu, atol=0.0, rtol=0.0)  # same code, same CPU
    else:
        assert (images - on_cpu).abs().max().item() < FLOAT32_DEVICE_VS_CPU


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_generation_in_reduced_precision_is_close_to_float32(device, precision):
    if precision == "float16" and device.type == "cpu":
        pytest.skip("float16 is the CUDA path; its arithmetic on the CPU is covered by "
                    "tests/test_inference.py::test_half_precision_error_is_small")
    if precision == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        pytest.skip(f"{describe_device(device)} has no bfloat16 support")
    z = latents_for_seed(1, 4, 32)
    full = Renderer(tiny_model(), device).render(z)
    reduced = Renderer(tiny_model(), device, precision=precision).render(z)
    difference = (full - reduced).abs()
    largest, mean = HALF_TOLERANCE[precision]
    # 0 would mean that no reduced-precision arithmetic ran at all
    assert 0 < difference.max().item() < largest, difference.max().item()
    assert difference.mean().item() < mean, difference.mean().item()


# -- training --------------------------------------------------------------------------------

TRAIN = dict(name="device-tiny", latent_size=16, channels=(16, 16, 8), images_first=32,
             images_fade=32, images_stable=16, images_final_extra=16,
             batch_sizes={4: 8, 8: 8, 16: 8}, log_every=8, sample_every=64,
             checkpoint_every=64, sample_count=4, mixed_precision=True, cpu_threads=1)
TRAIN_TOTAL = 144  # 32 + 2 x (32 + 16) + 16 images: 18 steps of 8
TRAIN_STOP = 48  # mid fade-in to 8 px: the resumed run must continue in the fade


def tiny_data(count: int = 16, size: int = 16, seed: int = 0) -> TrainingData:
    """Smooth random images (no files): training only has to run and stay finite here."""
    coarse = torch.rand(count, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    images = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def batch(resolution: int, indices) -> torch.Tensor:
        chosen = images[list(indices)]
        return F.adaptive_avg_pool2d(chosen, resolution) if resolution < size else chosen

    return TrainingData(count, f"random-{count}-{size}-{seed}", "smooth random images", batch)


def _log_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line]


def _assert_finite_log(rows: list[dict]) -> None:
    for row in rows:
        for key in ("loss_d", "loss_g", "gradient_penalty", "wasserstein"):
            assert np.isfinite(row[key]), (key, row)


def test_training_with_mixed_precision_stays_finite_and_resumes(device, tmp_path):
    """mixed_precision=True autocasts to bfloat16 on CUDA and is ignored on the CPU."""
    config = TrainConfig(**TRAIN)
    run, data = tmp_path / "run", tiny_data()
    first = train(config, data, run, device=str(device), stop_at=TRAIN_STOP)
    assert not first.finished and first.images_shown == TRAIN_STOP
    assert (run / "checkpoints" / "latest.pt").exists()
    before = _log_rows(run)
    second = train(config, data, run, device=str(device))
    assert second.finished and second.images_shown == TRAIN_TOTAL
    rows = _log_rows(run)
    images = [r["images"] for r in rows]
    assert images == sorted(set(images)) and images[-1] == TRAIN_TOTAL
    assert rows[:len(before)] == before  # the resumed run appended, it did not start over
    assert rows[len(before)]["images"] == TRAIN_STOP + 8
    assert rows[len(before)]["fading"]
    _assert_finite_log(rows)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["device"] == describe_device(device)
    model = load_generator(second.final_model)
    assert model.resolution == 16
    rendered = Renderer(model, device).render(latents_for_seed(0, 2, 16))
    assert bool(torch.isfinite(rendered).all())


# -- latent class optimisation ---------------------------------------------------------------

def _lco(device: torch.device | str, steps: int = 5):
    target = LCOTarget(present=("Effusion",), threshold=0.999)  # not reached in 5 steps
    settings = LCOSettings(steps=steps, restarts=0, batch_size=2, snapshot_every=0)
    requests = [LCORequest(k, target, 3) for k in range(2)]
    return optimise(tiny_model(), tiny_classifier(), requests, settings, device=device)


def test_lco_steps_move_towards_the_target(device):
    results = _lco(device)
    column = LABELS.index("Effusion")
    assert len(results) == 2
    for result in results:
        assert result.steps == 5 and result.evaluations >= 5 and not result.success
        assert result.image.shape == (32, 32) and result.image.dtype == np.float32
        assert np.isfinite(result.z).all() and np.isfinite(result.probabilities).all()
        assert 0.0 <= result.image.min() <= result.image.max() <= 1.0
        assert result.image_change > 0  # the latent moved and the image with it
    # the requested finding's probability rose, averaged over the batch
    start = np.mean([r.start_probabilities[column] for r in results])
    final = np.mean([r.probabilities[column] for r in results])
    assert final > start, (start, final)
    if device.type != "cpu":
        reference = _lco("cpu")
        for ours, theirs in zip(results, reference, strict=True):
            # the start is a forward pass only: tight; after Adam steps (each about lr in
            # every coordinate, whatever the gradient's size) rounding may flip tiny ones
            np.testing.assert_allclose(ours.start_probabilities, theirs.start_probabilities,
                                       atol=1e-3)
            np.testing.assert_allclose(ours.probabilities, theirs.probabilities, atol=0.05)


# -- FID features ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fid_state() -> dict[str, torch.Tensor]:
    """Deterministic random weights in the FID Inception layout (the published file is not
    available offline; what is checked does not depend on the weight values)."""
    from tests.reference.fid_random_weights import random_state

    return random_state(0)


def test_fid_features_on_the_device_match_pytorch_fid(device, fid_state):
    """pytorch-fid's features of the same weights and inputs are stored in the reference file;
    the extractor must reproduce them on the device (TF32 is switched off for FID)."""
    from tests.reference.fid_random_weights import reference_inputs

    extractor = FeatureExtractor(build_fid_inception(fid_state), device)
    grey = (reference_inputs()[:, :1] + 1.0) / 2.0  # the extractor's input: [N, 1, 299, 299]
    features = extractor.batch_features(grey)
    with np.load(FID_REFERENCE) as data:
        reference = data["features"]
    assert features.shape == (2, 2048) and features.dtype == np.float32
    relative = float(np.abs(features - reference).max() / np.abs(reference).max())
    assert relative < FID_RELATIVE, relative
    # a batch at another size exercises the resize on the device
    small = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(5))
    resized = extractor.batch_features(small)
    assert resized.shape == (2, 2048) and np.isfinite(resized).all()
    assert resized.min() >= 0.0  # pool features average ReLU outputs
    if device.type != "cpu":
        on_cpu = FeatureExtractor(build_fid_inception(fid_state), "cpu").batch_features(small)
        assert float(np.abs(resized - on_cpu).max() / np.abs(on_cpu).max()) < FID_RELATIVE


# -- DDP: two processes on one device --------------------------------------------------------

def ddp_backend(device: torch.device) -> tuple[str, bool]:
    """(backend, one device per rank). NCCL refuses two ranks on the same GPU ("Duplicate
    GPU detected"), so with one GPU both ranks share it over gloo, which reduces CUDA tensors
    too; with two or more GPUs NCCL and a GPU per rank, as the trainer runs under torchrun.
    CXRGAN_TEST_DDP_BACKEND forces a backend (to try NCCL on one GPU)."""
    forced = os.environ.get("CXRGAN_TEST_DDP_BACKEND", "").strip().lower()
    if device.type == "cuda":
        several = torch.cuda.device_count() >= 2
        backend = forced or ("nccl" if several else "gloo")
        return backend, several and backend == "nccl"
    return forced or "gloo", False


def _digest(module: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer: equal on two ranks only if bitwise equal."""
    hasher = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        hasher.update(name.encode())
        hasher.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return hasher.hexdigest()


def ddp_worker(argv: list[str]) -> None:
    """One rank under torchrun: train the tiny configuration to TRAIN_STOP, resume to the end
    in the same process, and write the digests of the networks this rank holds in memory
    (rank 0 alone writes checkpoints, so they cannot show whether the ranks agree)."""
    import torch.distributed as dist

    from cxrgan_desktop.engine.training import distributed
    from cxrgan_desktop.engine.training.state import TrainingState

    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--device", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--device-per-rank", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = args.device
    if device.startswith("cuda"):
        device = f"cuda:{local}" if args.device_per_rank else "cuda:0"
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend=args.backend)
    try:
        run, config, data = Path(args.run), TrainConfig(**TRAIN), tiny_data()
        first = train(config, data, run, device=device, stop_at=TRAIN_STOP,
                      state=TrainingState.create(config, torch.device(device), rank=rank))
        state = TrainingState.create(config, torch.device(device), rank=rank)
        second = train(config, data, run, device=device, state=state)  # resumes
        (run / f"rank{rank}.json").write_text(json.dumps({
            "first": first.images_shown, "second": second.images_shown,
            "finished": second.finished, "device": device, "backend": args.backend,
            "G": _digest(state.G), "G_ema": _digest(state.G_ema), "D": _digest(state.D)}))
    finally:
        distributed.finish()


@pytest.mark.slow  # torchrun and two fresh processes: about 15 s on the CPU
def test_ddp_two_processes_on_one_device(device, tmp_path):
    if device.type == "mps":
        pytest.skip("no torch.distributed backend reduces MPS tensors")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    backend, per_rank = ddp_backend(device)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [torchrun, "--standalone", "--nproc_per_node", "2", "-m",
               "tests.test_device_paths", str(run), "--device", str(device),
               "--backend", backend, *(["--device-per-rank"] if per_rank else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env,
                          cwd=ROOT)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    ranks = [json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert (rank["first"], rank["second"], rank["finished"]) == \
            (TRAIN_STOP, TRAIN_TOTAL, True)
    # DDP averaged the gradients: both ranks hold bitwise the same networks
    for name in ("G", "G_ema", "D"):
        assert ranks[0][name] == ranks[1][name], name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["processes"] == 2
    rows = _log_rows(run)
    assert rows[-1]["images"] == TRAIN_TOTAL  # one log, written by rank 0
    _assert_finite_log(rows)
    assert load_generator(run / "final.safetensors").resolution == 16


if __name__ == "__main__":  # torchrun -m tests.test_device_paths RUN --device D --backend B
    ddp_worker(sys.argv[1:])
