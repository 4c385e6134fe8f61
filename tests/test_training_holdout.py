"""Training keeps a patient-wise fraction of the data out and records it (held_out.json).

The phantom folder is written here by hand: 40 constant-grey 16 px PNGs of 12 patients with
1 to 6 images each, under names that do not reveal the patient, and a ChestX-ray14 label
file that does. Each image's grey level is its number, so a training batch tells which images
it holds without trusting the index mapping under test. The reference for "which patient"
is the CSV read with the ``csv`` module, not the package's reader.
"""

import csv
import hashlib
import json
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open

from cxrgan_desktop.engine.training.config import TrainConfig, load_config, total_images
from cxrgan_desktop.engine.training.dataset import DatasetSpec, list_dataset
from cxrgan_desktop.engine.training.holdout import (
    HELD_OUT_JSON,
    choose_held_out,
    read_held_out,
    write_held_out,
)
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.labels.chestxray14 import HEADER_FIELDS

IMAGES_PER_PATIENT = [6, 1, 3, 5, 2, 4, 1, 6, 3, 2, 4, 3]  # 12 patients, 40 images
N_IMAGES = sum(IMAGES_PER_PATIENT)
TINY = dict(name="tiny", latent_size=16, channels=(16, 16, 8), images_first=16,
            images_fade=16, images_stable=16, images_final_extra=0,
            batch_sizes={4: 8, 8: 8, 16: 8}, log_every=16, sample_every=1000,
            checkpoint_every=1000, sample_count=4)


def _grey(k: int) -> float:
    return (k + 1) / (N_IMAGES + 1)


def _write_folder(folder, with_csv=True):
    """Images ``scan_XXX.png`` in an order that interleaves patients; returns {name: pid}."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    owners = [p for p, n in enumerate(IMAGES_PER_PATIENT) for _ in range(n)]
    owners = [owners[i] for i in rng.permutation(len(owners))]
    patient_of, rows = {}, []
    follow = dict.fromkeys(range(len(IMAGES_PER_PATIENT)), 0)
    for k, p in enumerate(owners):
        name = f"scan_{k:03d}.png"
        write_png16(folder / name, np.full((16, 16), _grey(k), np.float32))
        pid = 4000 + 17 * p  # not the patient's position: ids need not be dense
        patient_of[name] = pid
        rows.append([name, "No Finding", follow[p], pid, 50, "M", "PA", 16, 16, 0.1, 0.1])
        follow[p] += 1
    if with_csv:
        with open(folder.parent / "Data_Entry.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER_FIELDS)
            writer.writerows(rows)
    return patient_of


@pytest.fixture
def folder(tmp_path):
    _write_folder(tmp_path / "images")
    return tmp_path


def _csv_patients(csv_path):
    """Image name -> Patient ID, read independently of the package."""
    with open(csv_path, newline="") as handle:
        return {row["Image Index"]: int(row["Patient ID"]) for row in csv.DictReader(handle)}


def _listing(folder):
    return list_dataset(DatasetSpec(folder / "images", folder / "Data_Entry.csv"))


def test_whole_patients_reach_the_fraction_within_one_patient(folder):
    listing = _listing(folder)
    patient_of = _csv_patients(folder / "Data_Entry.csv")
    sizes = {pid: list(patient_of.values()).count(pid) for pid in set(patient_of.values())}
    for fraction in (0.1, 0.25, 0.5):
        for seed in range(4):
            held = choose_held_out(listing, fraction, seed)
            held_pids = {patient_of[f] for f in held.files}
            wanted = fraction * N_IMAGES
            assert len(held.files) >= wanted
            assert len(held.files) - wanted < max(sizes[p] for p in held_pids)
            # whole patients: every image of a held-out patient is held out
            assert len(held.files) == sum(sizes[p] for p in held_pids)
            trained = {patient_of[n] for n in patient_of if n not in set(held.files)}
            assert held_pids and trained and not held_pids & trained
            assert held.patient_ids == tuple(sorted(f"{p:08d}" for p in held_pids))
            assert list(held.files) == sorted(held.files)
            assert (held.images_total, held.patients_total) == (N_IMAGES, 12)


def test_same_seed_same_set_other_seed_other_set(folder):
    listing = _listing(folder)
    first = choose_held_out(listing, 0.25, 3)
    again = choose_held_out(_listing(folder), 0.25, 3)  # a fresh listing, as another rank
    assert again == first
    assert choose_held_out(listing, 0.25, 4).files != first.files
    with pytest.raises(ValueError, match="between 0 and 1"):
        choose_held_out(listing, 1.0, 0)
    with pytest.raises(ValueError, match="negative"):
        choose_held_out(listing, 0.2, -1)


def test_names_give_patients_without_a_label_file(tmp_path):
    folder = tmp_path / "cxr14"
    folder.mkdir()
    names = [f"{p:08d}_{f:03d}.png" for p in (11, 12, 13, 14, 15) for f in range(p - 10)]
    names += ["odd_a.png", "odd_b.png"]
    for k, name in enumerate(names):
        write_png16(folder / name, np.full((16, 16), k / 20, np.float32))
    held = choose_held_out(list_dataset(DatasetSpec(folder)), 0.3, 1)
    by_name = {n: (n.split("_")[0] if re.fullmatch(r"\d{8}_\d{3}\.png", n) else "file:" + n)
               for n in names}
    assert set(held.patient_ids) == {by_name[f] for f in held.files}
    assert not set(held.patient_ids) & {by_name[n] for n in names if n not in held.files}
    assert "2 of 17 images have no patient id" in held.method


def test_record_round_trip_and_damage(folder):
    held = choose_held_out(_listing(folder), 0.25, 0)
    run = folder / "run"
    path = write_held_out(run, held)
    assert read_held_out(run) == held
    data = json.loads(path.read_text())
    text = "".join(f"{f}\n" for f in data["files"])
    assert data["files_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(ValueError, match=re.escape(str(folder / "nowhere" / HELD_OUT_JSON))):
        read_held_out(folder / "nowhere")
    path.write_text(path.read_text()[:-40])  # torn
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*damaged"):
        read_held_out(run)
    data["files"] = data["files"][1:]  # one image silently dropped from the list
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="damaged.*checksum"):
        read_held_out(run)
    del data["patient_ids"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="damaged.*patient_ids"):
        read_held_out(run)
    path.write_text(json.dumps({**data, "format": "other/9"}))
    with pytest.raises(ValueError, match="format"):
        read_held_out(run)


def test_config_fields_default_to_none_and_load(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text('name = "x"\nchannels = [16, 8]\n[batch_sizes]\n4 = 8\n8 = 4\n')
    config = load_config(old)
    assert (config.hold_out_fraction, config.hold_out_seed) == (0.0, 0)
    new = tmp_path / "new.toml"
    new.write_text(old.read_text().replace('name = "x"\n',
                                           'name = "x"\nhold_out_fraction = 0.2\n'
                                           'hold_out_seed = 3\n'))
    assert (load_config(new).hold_out_fraction, load_config(new).hold_out_seed) == (0.2, 3)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="hold_out_fraction"):
        TrainConfig(hold_out_fraction=1.0)


def _config(folder, **extra):
    return TrainConfig.from_dict({**TINY, **extra,
                                  "data": {"image_dir": str(folder / "images"),
                                           "labels_csv": str(folder / "Data_Entry.csv"),
                                           "cache_dir": str(folder / "cache")}})


def _recording(monkeypatch):
    """Wrap the loop's ``train`` so every real batch is recorded (as image numbers, read
    from the grey level) and so that held_out.json's presence at the first step is noted."""
    import cxrgan_desktop.tasks.train as task

    seen: list[int] = []
    calls: list[dict] = []
    real_train = task.train

    def train(config, data, run_dir, **kwargs):
        calls.append({"count": data.count, "record": (run_dir / HELD_OUT_JSON).exists(),
                      "fingerprint": data.fingerprint})
        whole = data.batch

        def batch(resolution, indices):
            out = whole(resolution, indices)
            grey = out.mean(dim=(1, 2, 3)).double()
            seen.extend(int(k) for k in torch.round(grey * (N_IMAGES + 1) - 1).tolist())
            return out

        data.batch = batch
        return real_train(config, data, run_dir, **kwargs)

    monkeypatch.setattr(task, "train", train)
    return seen, calls


def test_training_never_draws_a_held_out_patient_and_resume_keeps_the_set(
        folder, monkeypatch):
    from cxrgan_desktop.tasks.train import export_checkpoint, run_training

    config = _config(folder, hold_out_fraction=0.3, hold_out_seed=2)
    seen, calls = _recording(monkeypatch)
    run = folder / "run"
    first = run_training(config, run, device="cpu", stop_at=40)
    assert not first.finished and first.images_shown == 40
    recorded = (run / HELD_OUT_JSON).read_bytes()
    export = export_checkpoint(run, folder / "mid.safetensors")
    result = run_training(config, run, device="cpu")
    assert result.finished and result.images_shown == total_images(config) == 80
    assert (run / HELD_OUT_JSON).read_bytes() == recorded  # resume keeps the same set

    patient_of = _csv_patients(folder / "Data_Entry.csv")
    names = sorted(patient_of)  # scan_XXX.png: image number = position
    held = json.loads(recorded)
    held_pids = {patient_of[f] for f in held["files"]}
    drawn = {patient_of[names[k]] for k in seen}
    assert len(seen) == 80 and not drawn & held_pids
    assert len(held["files"]) >= 0.3 * N_IMAGES
    assert all(c["record"] for c in calls)  # written before the first step, both times
    assert [c["count"] for c in calls] == [N_IMAGES - len(held["files"])] * 2

    sha = hashlib.sha256("".join(f"{f}\n" for f in held["files"]).encode()).hexdigest()
    summary = {"fraction": 0.3, "seed": 2, "images": len(held["files"]),
               "patients": len(held_pids), "files_sha256": sha, "record": HELD_OUT_JSON}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["held_out"] == summary
    assert manifest["dataset"]["description"].endswith(
        f"; {N_IMAGES - len(held['files'])} trained on, {len(held['files'])} images of "
        f"{len(held_pids)} patients held out")
    saved = json.loads((run / "config.json").read_text())
    assert (saved["hold_out_fraction"], saved["hold_out_seed"]) == (0.3, 2)
    for model in (result.final_model, export):
        with safe_open(str(model), "pt") as handle:
            provenance = json.loads(handle.metadata()["provenance"])
        assert provenance["held_out"] == summary

    # a run keeps its hold-out: another seed, or none, is refused
    from dataclasses import replace
    with pytest.raises(ValueError, match="resume it with --hold-out-patients 0.3 "
                                         "--hold-out-seed 2"):
        run_training(replace(config, hold_out_seed=5), run, device="cpu")
    with pytest.raises(ValueError, match="hold-out-patients 0.3"):
        run_training(replace(config, hold_out_fraction=0.0), run, device="cpu")


def test_a_hold_out_cannot_start_mid_run(folder):
    from dataclasses import replace

    from cxrgan_desktop.tasks.train import run_training

    config = _config(folder)
    run_training(config, folder / "run", device="cpu", stop_at=8)
    with pytest.raises(ValueError, match="trained on all its patients"):
        run_training(replace(config, hold_out_fraction=0.2), folder / "run", device="cpu")
    assert not (folder / "run" / HELD_OUT_JSON).exists()


# default_cache_dir(...).name for these specs at 16 px, 16-bit, crop, computed with the code
# before the hold-out existed: the option must not move anyone's cache.
CACHE_KEYS_BEFORE = {("/nonexistent/cxr/images", "/nonexistent/cxr/Data_Entry.csv"):
                     "4c2917135914845a",
                     ("/nonexistent/cxr/images", None): "6e2eaa7d544d711b"}


def test_fraction_zero_changes_no_cache_key_or_fingerprint(folder, monkeypatch):
    from pathlib import Path

    from cxrgan_desktop.engine.training.image_cache import default_cache_dir
    from cxrgan_desktop.tasks.train import prepare_data, run_training

    for (images, labels), key in CACHE_KEYS_BEFORE.items():
        spec = DatasetSpec(Path(images), None if labels is None else Path(labels))
        assert default_cache_dir(spec, 16, 16, "crop").name == key

    # the listing's fingerprint, by its documented definition
    root = (folder / "images").resolve()
    files = sorted(root.glob("*.png"))
    payload = {"spec": {"image_dir": str(root),
                        "labels_csv": str((folder / "Data_Entry.csv").resolve()),
                        "view_positions": [], "require_findings": [], "exclude_findings": [],
                        "max_images": None},
               "labels_sha256": hashlib.sha256(
                   (folder / "Data_Entry.csv").read_bytes()).hexdigest(),
               "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
    fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"))
                                 .encode()).hexdigest()
    data = TINY | {"data": {"image_dir": str(folder / "images"),
                            "labels_csv": str(folder / "Data_Entry.csv")}}
    plain = prepare_data(TrainConfig.from_dict(data))
    with_hold_out = prepare_data(TrainConfig.from_dict(data | {"hold_out_fraction": 0.3}))
    assert plain.cache_dir == with_hold_out.cache_dir  # one cache serves both
    assert plain.data.fingerprint == with_hold_out.data.fingerprint == fingerprint
    assert plain.data.count == N_IMAGES and plain.data.held_out is None

    seen, calls = _recording(monkeypatch)
    run = folder / "run0"
    run_training(TrainConfig.from_dict(data), run, device="cpu", stop_at=16)
    assert calls == [{"count": N_IMAGES, "record": False, "fingerprint": fingerprint}]
    assert len(seen) == 16
    assert not (run / HELD_OUT_JSON).exists()
    assert "held_out" not in json.loads((run / "manifest.json").read_text())


def test_cli_option(folder, capsys):
    from cxrgan_desktop import cli

    config = _config(folder)
    (folder / "tiny.json").write_text(json.dumps(config.to_dict()))
    run = folder / "run"
    assert cli.main(["train", str(folder / "tiny.json"), "--run-dir", str(run),
                     "--hold-out-patients", "0.25", "--hold-out-seed", "4", "--device", "cpu",
                     "--stop-at", "8"]) == 0
    held = read_held_out(run)
    assert (held.fraction, held.seed) == (0.25, 4)
    assert held == choose_held_out(_listing(folder), 0.25, 4)
    assert cli.main(["train", str(folder / "tiny.json"), "--hold-out-patients", "1.5"]) == 2
    assert "must be at least 0 and below 1" in capsys.readouterr().err
    # resuming without the option is refused with the command that continues it
    assert cli.main(["train", str(folder / "tiny.json"), "--run-dir", str(run),
                     "--device", "cpu", "--stop-at", "16"]) == 2
    assert "--hold-out-patients 0.25 --hold-out-seed 4" in capsys.readouterr().err


def test_panel_passes_the_option(qtbot):
    pytest.importorskip("pytestqt")
    from cxrgan_desktop.gui.panels.train import TrainPanel

    panel = TrainPanel()
    qtbot.addWidget(panel)
    assert "--hold-out-patients" not in panel.command()
    panel.hold_out.setValue(12.5)
    command = panel.command()
    assert command[command.index("--hold-out-patients") + 1] == "0.125"
    assert "memorisation audit" in panel.hold_out.toolTip()


RANK_SCRIPT = """
import json, sys
from pathlib import Path
import torch
from cxrgan_desktop.engine.training import distributed
from cxrgan_desktop.engine.training.config import load_config
import cxrgan_desktop.tasks.train as task

config, run, n = load_config(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
context, device = distributed.initialise("cpu")
real_train = task.train

def train(config, data, run_dir, **kwargs):
    whole, seen = data.batch, []
    def batch(resolution, indices):
        out = whole(resolution, indices)
        grey = out.mean(dim=(1, 2, 3)).double()
        seen.extend(int(k) for k in torch.round(grey * (n + 1) - 1).tolist())
        return out
    data.batch = batch
    result = real_train(config, data, run_dir, **kwargs)
    (run_dir / f"rank{context.rank}.json").write_text(json.dumps(
        {"count": data.count, "seen": seen, "held_out": data.held_out}))
    return result

task.train = train
task.run_training(config, run, device=device, stop_at=24)
distributed.finish()
"""


def test_every_torchrun_rank_holds_out_the_same_patients(folder):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    (folder / "tiny.json").write_text(json.dumps(
        _config(folder, hold_out_fraction=0.3, hold_out_seed=1).to_dict()))
    (folder / "rank_script.py").write_text(RANK_SCRIPT)
    run = folder / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2",
                           str(folder / "rank_script.py"), str(folder / "tiny.json"), str(run),
                           str(N_IMAGES)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1)]
    held = read_held_out(run)
    assert held == choose_held_out(_listing(folder), 0.3, 1)
    assert ranks[0]["held_out"] == ranks[1]["held_out"] == held.summary()
    assert ranks[0]["count"] == ranks[1]["count"] == N_IMAGES - len(held.files)
    patient_of = _csv_patients(folder / "Data_Entry.csv")
    names = sorted(patient_of)
    held_pids = {patient_of[f] for f in held.files}
    for rank in ranks:
        assert len(rank["seen"]) == 12  # 3 steps of 4 images per rank
        assert not {patient_of[names[k]] for k in rank["seen"]} & held_pids
    assert not set(ranks[0]["seen"]) & set(ranks[1]["seen"])  # one epoch: disjoint shares
