"""Progressive training on tiny phantoms (16 px): end to end, exact resume, cancel,
fine-tuning from the paper's layout. Networks are tiny so that each run takes seconds."""

import json
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.engine.checkpoints import load_generator
from cxrgan_desktop.engine.training.config import (
    TrainConfig,
    load_config,
    phase_at,
    phases,
    total_images,
)
from cxrgan_desktop.engine.training.loop import TrainingData, train

TINY = dict(name="tiny", latent_size=16, channels=(16, 16, 8), images_first=64,
            images_fade=64, images_stable=32, images_final_extra=32,
            batch_sizes={4: 8, 8: 8, 16: 8}, log_every=16, sample_every=64,
            checkpoint_every=64, sample_count=4)


@pytest.fixture(scope="module")
def phantom_data(tmp_path_factory):
    from cxrgan_desktop.imaging.png16 import read_png16
    from cxrgan_desktop.tasks.phantom import write_phantoms

    folder = tmp_path_factory.mktemp("phantoms")
    write_phantoms(folder, n=24, size=16, seed=0)
    images = torch.from_numpy(np.stack([read_png16(p) for p in sorted(folder.glob("*.png"))]))
    images = images[:, None]  # [N, 1, 16, 16]

    def batch(resolution, indices):
        chosen = images[list(indices)]
        return F.adaptive_avg_pool2d(chosen, resolution) if resolution < 16 else chosen

    return TrainingData(len(images), "phantom-16-fingerprint", "24 phantoms at 16 px", batch)


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_schedule_is_the_papers_by_default():
    config = TrainConfig()
    assert total_images(config) == 14_000_000
    assert phase_at(config, 0).resolution == 4
    mid = phase_at(config, 1_200_000)
    assert mid.resolution == 8 and mid.fading and mid.alpha == pytest.approx(0.5)
    assert phase_at(config, 13_999_999).resolution == 1024
    assert [p[0] for p in phases(TrainConfig(**TINY))] == [0, 1, 1, 2, 2]


def test_config_files_and_errors(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('name = "x"\nchannels = [16, 8]\nlr = 0.0005\n[batch_sizes]\n4 = 8\n8 = 4\n'
                    '[data]\nimage_dir = "/data"\nview_positions = ["PA"]\n')
    config = load_config(toml)
    assert config.lr == 0.0005 and config.batch_sizes == {4: 8, 8: 4}
    assert config.data.view_positions == ("PA",)
    (tmp_path / "bad.json").write_text(json.dumps({"learning_rate": 1}))
    with pytest.raises(ValueError, match=r"bad.json: unknown training settings: learning_rate"):
        load_config(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="batch_sizes"):
        TrainConfig(channels=(16, 8, 8), batch_sizes={4: 8})


def test_trains_end_to_end_and_exports_a_model(phantom_data, tmp_path):
    config = TrainConfig(**TINY)
    result = train(config, phantom_data, tmp_path / "run", device="cpu")
    assert result.finished and result.images_shown == total_images(config) == 288
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().split("\n")
            if line]
    assert {r["resolution"] for r in rows} == {4, 8, 16}
    assert any(r["fading"] for r in rows)
    assert {"loss_d", "loss_g", "gradient_penalty", "images_per_s", "alpha"} <= set(rows[-1])
    assert all(np.isfinite(r["loss_d"]) for r in rows)
    model = load_generator(result.final_model)
    assert model.resolution == 16 and model.provenance["images_shown"] == 288
    assert model.discriminator_state is not None
    assert (tmp_path / "run" / "samples" / "latest.png").exists()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["dataset"]["fingerprint"] == "phantom-16-fingerprint"


def test_resume_mid_fade_continues_exactly(phantom_data, tmp_path):
    config = TrainConfig(**TINY)
    straight = train(config, phantom_data, tmp_path / "a", device="cpu")
    stop = 96  # half way through the 8 px fade-in (64..128)
    assert phase_at(config, stop).fading
    first = train(config, phantom_data, tmp_path / "b", device="cpu", stop_at=stop)
    assert first.images_shown == stop and not first.finished
    resumed = train(config, phantom_data, tmp_path / "b", device="cpu")  # a fresh state
    assert resumed.finished and resumed.images_shown == straight.images_shown
    a = load_generator(straight.final_model).generator
    b = load_generator(resumed.final_model).generator
    torch.testing.assert_close(_params(a), _params(b), rtol=0, atol=1e-6)


def test_a_resume_logs_each_image_count_once(phantom_data, tmp_path):
    """A kill after a log line but before the next checkpoint: the resumed run trains
    those images again and must not log them twice (nor keep a torn line)."""
    config = TrainConfig(**TINY)
    straight = train(config, phantom_data, tmp_path / "a", device="cpu")
    train(config, phantom_data, tmp_path / "b", device="cpu", stop_at=96)
    log = tmp_path / "b" / "log.jsonl"
    with open(log, "a") as handle:  # what the killed run had logged past its checkpoint
        handle.write(json.dumps({"images": 112, "loss_d": 1.0, "loss_g": 1.0}) + "\n")
        handle.write('{"images": 128, "loss')
    resumed = train(config, phantom_data, tmp_path / "b", device="cpu")
    assert resumed.finished

    def counts(run):
        return [json.loads(line)["images"]
                for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]

    assert counts("b") == counts("a") == sorted(set(counts("a")))
    assert straight.log_rows == len(counts("b"))


def test_cancel_saves_a_checkpoint_and_resumes(phantom_data, tmp_path):
    config = TrainConfig(**TINY)
    cancel = threading.Event()

    def progress(fraction, message=""):
        if fraction > 0.3:
            cancel.set()

    with pytest.raises(Cancelled):
        train(config, phantom_data, tmp_path / "run", device="cpu", progress=progress,
              cancel=cancel)
    checkpoint = tmp_path / "run" / "checkpoints" / "latest.pt"
    saved = torch.load(checkpoint, weights_only=True)
    assert 0 < saved["images_shown"] < 288
    result = train(config, phantom_data, tmp_path / "run", device="cpu")
    assert result.finished


def test_checkpoint_for_another_architecture_is_refused(phantom_data, tmp_path):
    train(TrainConfig(**TINY), phantom_data, tmp_path / "run", device="cpu", stop_at=16)
    other = TrainConfig(**{**TINY, "channels": (16, 8, 8)})
    with pytest.raises(ValueError, match="architecture"):
        train(other, phantom_data, tmp_path / "run", device="cpu")


def _paper_file(tmp_path, with_discriminator):
    from tests.reference.segal_layout import (
        random_segal_discriminator_state,
        random_segal_generator_state,
    )

    g = {k: v * (0.2 if k.endswith("weight") else 1) for k, v in
         random_segal_generator_state((16, 16, 8), 16, seed=7).items()}
    state = {f"gen_shadow.{k}": v for k, v in g.items()}
    if with_discriminator:
        d = random_segal_discriminator_state((16, 16, 8), seed=8)
        state.update({f"discriminator.{k}": v for k, v in d.items()})
    path = tmp_path / ("full.ckpt" if with_discriminator else "gen.pth")
    torch.save({"state_dict": state}, path)
    return path


def test_fine_tune_from_the_papers_layout_with_frozen_low_layers(phantom_data, tmp_path):
    from cxrgan_desktop.engine.training.finetune import prepare_finetune

    path = _paper_file(tmp_path, with_discriminator=True)
    config = TrainConfig(**{**TINY, "init_from": str(path), "freeze_below": 16,
                            "images_stable": 48, "lr": 1e-4})
    effective, state = prepare_finetune(config, torch.device("cpu"))
    assert effective.image_channels == 3 and effective.d_warmup_images == 0
    before_low = state.G.latent_fc.weight.detach().clone()
    before_high = state.G.blocks[1].conv1.weight.detach().clone()
    before_d = _params(state.D)
    result = train(effective, phantom_data, tmp_path / "ft", device="cpu", state=state)
    assert result.finished and result.images_shown == 48
    torch.testing.assert_close(state.G.latent_fc.weight, before_low)  # frozen
    assert not torch.equal(state.G.blocks[1].conv1.weight, before_high)  # trained
    assert not torch.equal(_params(state.D), before_d)
    assert load_generator(result.final_model).resolution == 16


def test_fine_tune_without_discriminator_warms_up_a_fresh_one(phantom_data, tmp_path):
    from cxrgan_desktop.engine.training.finetune import prepare_finetune

    path = _paper_file(tmp_path, with_discriminator=False)
    config = TrainConfig(**{**TINY, "init_from": str(path), "images_stable": 48,
                            "d_warmup_images": 24})
    effective, state = prepare_finetune(config, torch.device("cpu"))
    g_before = _params(state.G)
    train(effective, phantom_data, tmp_path / "ft", device="cpu", state=state, stop_at=24)
    torch.testing.assert_close(_params(state.G), g_before)  # only D trained so far
    rows = [json.loads(x) for x in (tmp_path / "ft" / "log.jsonl").read_text().split("\n") if x]
    assert rows and all("loss_g" not in r for r in rows)
    train(effective, phantom_data, tmp_path / "ft", device="cpu", state=state)
    assert not torch.equal(_params(state.G), g_before)


def test_cli_train_on_a_phantom_folder_stops_and_resumes(tmp_path, capsys):
    from cxrgan_desktop import cli
    from cxrgan_desktop.tasks.phantom import write_phantoms

    write_phantoms(tmp_path / "data", n=16, size=32, seed=1)
    config = {**TINY, "batch_sizes": {"4": 8, "8": 8, "16": 8},
              "data": {"image_dir": str(tmp_path / "data"),
                       "labels_csv": str(tmp_path / "data" / "Data_Entry_phantom.csv"),
                       "cache_dir": str(tmp_path / "cache")}}
    (tmp_path / "tiny.json").write_text(json.dumps(config))
    run = tmp_path / "run"
    assert cli.main(["train", str(tmp_path / "tiny.json"), "--run-dir", str(run),
                     "--device", "cpu", "--stop-at", "100"]) == 0
    assert "104 of 288 scheduled images shown (stopped" in capsys.readouterr().out  # 13 x 8
    assert cli.main(["export-run", str(run), "--out", str(tmp_path / "now.safetensors")]) == 0
    assert "tiny-104, 8x8 (mid fade-in)" in capsys.readouterr().out
    from cxrgan_desktop.engine.checkpoints import load_generator

    assert load_generator(tmp_path / "now.safetensors").provenance["images_shown"] == 104
    assert cli.main(["export-run", str(run), "--out", str(tmp_path / "live.safetensors"),
                     "--weights", "live"]) == 0
    live = load_generator(tmp_path / "live.safetensors").generator.state_dict()
    ema = load_generator(tmp_path / "now.safetensors").generator.state_dict()
    assert not torch.equal(live["latent_fc.weight"], ema["latent_fc.weight"])
    assert cli.main(["export-run", str(tmp_path), "--out", str(tmp_path / "x.st")]) == 2
    assert cli.main(["train", str(tmp_path / "tiny.json"), "--run-dir", str(run),
                     "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "288 of 288 scheduled images shown (finished)" in out and "final.safetensors" in out
    assert load_generator(run / "final.safetensors").resolution == 16
    assert cli.main(["train", str(tmp_path / "tiny.json"), "--run-dir", str(run),
                     "--device", "cpu"]) == 0  # nothing left: the run's last losses, no nan
    again = capsys.readouterr().out
    assert "288 of 288" in again and "last logged losses: D " in again and "nan" not in again
    assert cli.main(["train", str(tmp_path / "missing.toml")]) == 2
    assert cli.main(["train", "quick256", "--data", str(tmp_path / "nothing")]) == 2
    assert "nothing" in capsys.readouterr().err
