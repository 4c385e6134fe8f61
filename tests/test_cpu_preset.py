"""Training a newcomer can watch succeed on a CPU: the EMA generator of a short run is
usable (its horizon ramps up with the images shown), the tiny64 preset exists and is named
where users look, and the thread count is chosen on purpose and recorded."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from cxrgan_desktop.engine.training.config import TrainConfig, load_config, preset_names
from cxrgan_desktop.engine.training.loop import train
from cxrgan_desktop.engine.training.state import TrainingState
from cxrgan_desktop.engine.training.threads import choose_threads
from tests.test_training import TINY, phantom_data  # noqa: F401 (a fixture)


def _documented_beta(images_shown: int, batch: int, decay: float = 0.999,
                     rampup: float = 0.05) -> float:
    """The README's rule, written out independently of the library."""
    half_life = batch * math.log(0.5) / math.log(decay)  # the paper's per-step decay
    if rampup:
        half_life = min(half_life, images_shown * rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


def test_ema_weight_ramps_up_to_the_papers_decay():
    config = TrainConfig()
    assert config.ema_beta(0, 64) == 0.0  # the first step copies the live generator
    assert config.ema_beta(10_000, 64) == pytest.approx(_documented_beta(10_000, 64))
    assert config.ema_beta(10_000, 64) == pytest.approx(0.5 ** (64 / 500))
    assert config.ema_beta(1_000_000, 64) == 0.999  # past the ramp: exactly the paper's
    assert TrainConfig(ema_rampup=0).ema_beta(0, 64) == 0.999
    fixed = TrainConfig(ema_half_life_images=10_000, ema_rampup=0)
    assert fixed.ema_beta(5, 32) == pytest.approx(0.5 ** (32 / 10_000))
    with pytest.raises(ValueError, match="ema_rampup"):
        TrainConfig(ema_rampup=-1)


def _run(phantom_data, tmp_path, **changes) -> tuple[TrainingState, list]:  # noqa: F811
    """A short tiny run that records the live weights at every EMA update."""
    config = TrainConfig(**{**TINY, **changes})
    state = TrainingState.create(config, torch.device("cpu"))
    initial = [p.detach().clone() for p in state.G.parameters()]
    steps = []
    update = state.update_ema

    def recording(batch: int) -> None:
        steps.append((state.images_shown, batch,
                      [p.detach().clone() for p in state.G.parameters()]))
        update(batch)

    state.update_ema = recording
    train(config, phantom_data, tmp_path, device="cpu", state=state)
    return state, [initial, *steps]


def test_ema_is_the_documented_average_of_the_live_weights(phantom_data, tmp_path):  # noqa: F811
    state, (initial, *steps) = _run(phantom_data, tmp_path / "run")
    assert len(steps) == 288 // 8
    ema = initial
    for shown, batch, live in steps:
        beta = _documented_beta(shown, batch)
        ema = [beta * e + (1 - beta) * w for e, w in zip(ema, live, strict=True)]
    for mine, theirs in zip(state.G_ema.parameters(), ema, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["ema_rampup"] == 0.05 and recorded["ema_half_life_images"] == 0


def _gap(a: torch.nn.Module, b: torch.nn.Module, z: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(z) - b(z)).abs().mean())


def _with_weights(model: torch.nn.Module, weights: list) -> torch.nn.Module:
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for p, w in zip(clone.parameters(), weights, strict=True):
            p.copy_(w)
    return clone


def test_ema_of_a_short_run_is_close_to_the_live_generator(phantom_data, tmp_path):  # noqa: F811
    """The EMA is a weighted mean of past live generators; if their average age is a steps,
    it draws about (a + 1) step-to-step changes away from the live one (by the triangle
    inequality, were the generator linear in its weights). With the ramp the half-life at
    the end of this 288-image run is 5 % of it (14 images, two steps): close. Without it,
    0.999 per step keeps 0.999^36 = 96 % of the initial weights: as far from the live
    generator as the untrained one is, which is what the tester saw as noise."""
    z = torch.randn(8, TINY["latent_size"], generator=torch.Generator().manual_seed(5))
    ramped, (initial, *steps) = _run(phantom_data, tmp_path / "ramp")
    live = ramped.G
    weights, age = [1.0], [len(steps)]  # of the initial weights, then of each live step
    for k, (shown, batch, _) in enumerate(steps):
        beta = _documented_beta(shown, batch)
        weights = [w * beta for w in weights] + [1 - beta]
        age.append(len(steps) - 1 - k)
    mean_age = sum(w * a for w, a in zip(weights, age, strict=True))
    step_change = _gap(_with_weights(live, steps[-2][2]), live, z)
    assert mean_age < 3
    assert _gap(ramped.G_ema, live, z) < (mean_age + 1) * step_change

    fixed, (initial, *_) = _run(phantom_data, tmp_path / "fixed", ema_rampup=0)
    untrained = _with_weights(fixed.G, initial)
    assert _gap(fixed.G_ema, fixed.G, z) > 0.9 * _gap(untrained, fixed.G, z)
    assert _gap(fixed.G_ema, fixed.G, z) > 2 * _gap(ramped.G_ema, live, z)


def test_tiny64_preset_is_a_small_64px_cpu_run():
    config = load_config("tiny64")
    assert "tiny64" in preset_names() and config.name == "tiny64"
    assert config.target_resolution == 64 and max(config.channels) <= 64
    assert config.ema_rampup > 0
    assert choose_threads(config)[0] == 1 or "OMP_NUM_THREADS" in choose_threads(config)[1]


def test_thread_count_is_chosen_and_recorded(phantom_data, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    tiny = TrainConfig(**TINY)
    assert choose_threads(tiny) == (1, choose_threads(tiny)[1])  # small network: one
    assert choose_threads(TrainConfig(**{**TINY, "cpu_threads": 3}))[0] == 3
    big = TrainConfig(channels=(256, 256), batch_sizes={4: 8, 8: 8})
    assert choose_threads(big, local_processes=2)[0] >= 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose_threads(tiny) == (2, "OMP_NUM_THREADS")
    before = torch.get_num_threads()
    train(TrainConfig(**{**TINY, "cpu_threads": 2}), phantom_data, tmp_path, device="cpu",
          stop_at=16)
    assert torch.get_num_threads() == before  # restored for the rest of the process
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["threads_per_process"] == 2 and "cpu_threads" in manifest["threads_why"]
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["threads"] == 2 and rows[-1]["processes"] == 1


def test_train_help_names_every_preset_and_no_missing_file(capsys):
    from cxrgan_desktop import cli

    try:  # main returns argparse's exit code (older versions let SystemExit through)
        assert cli.main(["train", "--help"]) == 0
    except SystemExit as exit_:
        assert exit_.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "configs/quick256.toml" not in text
    for name in preset_names():
        assert name in text
    assert "cxrgan train tiny64" in text
