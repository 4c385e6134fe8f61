"""Output folders after kills, races and full disks (issue 18, groups 4 and 7).

The kill tests SIGKILL a real ``python -m cxrgan_desktop`` process at a moment drawn from a
seeded generator (after its lock file appears, so the job has started), then run the command
again. Their verdict does not depend on where the kill landed: whatever it interrupted, the
rerun must leave exactly the files that the manifest, CSV or report lists, and no temporary
or lock files.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrgan_desktop import cli
from cxrgan_desktop.core.output_lock import LOCK_NAME, FolderBusy, output_lock
from cxrgan_desktop.engine.checkpoints import OutputAdapter, load_generator, save_generator
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.engine.render import Renderer, latents_for_seed
from cxrgan_desktop.imaging.png16 import read_png16
from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv
from cxrgan_desktop.tasks.phantom import image_name, write_phantoms
from cxrgan_desktop.tasks.phantom_patients import layout

RNG = np.random.default_rng(18)  # the kill moments: seeded, so a failure can be replayed
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _cxrgan(*args: str) -> list[str]:
    return [sys.executable, "-m", "cxrgan_desktop", *args]


def _kill_during(command: list[str], out: Path, delay: float) -> int | None:
    """Start ``command``, wait until it holds ``out``'s lock, wait ``delay`` s, SIGKILL it."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ENV)
    deadline = time.monotonic() + 60
    while not (out / LOCK_NAME).exists() and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    proc.kill()
    return proc.wait(timeout=30)


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=180)


def _hidden(folder: Path) -> list[str]:
    """Temporary, lock and journal files: none may outlive a finished job."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def model_128(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = PGGANConfig(latent_size=16, channels=(32, 32, 16, 16, 8, 8), image_channels=1)
    return save_generator(tmp_path / "m.safetensors", Generator(config), OutputAdapter(), "m")


# -- the lock ---------------------------------------------------------------------------------

HOLDER = ("import sys, time\nfrom cxrgan_desktop.core.output_lock import output_lock\n"
          "with output_lock(sys.argv[1], 'holder'):\n    print('locked', flush=True)\n"
          "    time.sleep(120)\n")


def test_a_second_writer_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, model_128,
                                                                     capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusy, match=f"process {holder.pid} "), \
                output_lock(out, "test"):
            pass
        code = cli.main(["generate", "--model", str(model_128), "--n", "2", "--device", "cpu",
                         "--out", str(out)])
        assert code == cli.EXIT_ERROR
        assert f"is being written by process {holder.pid}" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing was written
    finally:
        holder.kill()
        holder.wait()
    assert (out / LOCK_NAME).exists()  # left by the killed holder: stale, taken over
    with output_lock(out, "test") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not (out / LOCK_NAME).exists()


def test_without_flock_a_dead_processes_lock_is_taken_and_a_live_ones_is_not(tmp_path,
                                                                              monkeypatch):
    import socket

    from cxrgan_desktop.core import output_lock as module

    monkeypatch.setattr(module, "fcntl", None)  # the O_EXCL fallback (no flock)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with output_lock(tmp_path, "test"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(FolderBusy, match=f"process {os.getpid()} "), \
                output_lock(tmp_path, "second"):
            pass
    assert list(tmp_path.iterdir()) == []


# -- generate -------------------------------------------------------------------------------

def _check_generate_folder(out: Path, model_file: Path, n: int, seed: int) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    images = sorted(p.name for p in out.glob("img_*"))
    assert manifest["complete"] is True and manifest["requested"] == n
    assert [e["file"] for e in manifest["images"]] == images
    assert [e["index"] for e in manifest["images"]] == list(range(n))
    assert _hidden(out) == []
    expected = Renderer(load_generator(model_file)).render(
        latents_for_seed(seed, n, 16)).numpy()[:, 0]
    for i, name in enumerate(images):  # the images of this seed (batching moves a few LSB)
        assert np.abs(read_png16(out / name) - expected[i]).max() <= 4 / 65535


def test_generate_killed_then_resumed_matches_its_manifest(tmp_path, model_128):
    out = tmp_path / "out"
    command = _cxrgan("generate", "--model", str(model_128), "--n", "200", "--seed", "2",
                      "--batch-size", "1", "--device", "cpu", "--out", str(out))
    assert cli.main([*command[3:-2], "--seed", "1", "--out", str(out)]) == 0  # an earlier run
    _kill_during([*command, "--overwrite"], out, RNG.uniform(0.0, 1.5))
    rerun = _run([*command, "--resume"])
    if rerun.returncode != 0:  # killed before its manifest: the seed 1 run is still there
        assert "differ in" in rerun.stderr and "Traceback" not in rerun.stderr
        rerun = _run([*command, "--overwrite"])
    assert rerun.returncode == 0, rerun.stderr
    _check_generate_folder(out, model_128, 200, 2)


def test_generate_refuses_a_used_folder_unless_told(tmp_path, model_128, capsys):
    out = tmp_path / "out"
    common = ["generate", "--model", str(model_128), "--device", "cpu", "--out", str(out)]
    assert cli.main([*common, "--n", "50", "--seed", "1"]) == 0
    capsys.readouterr()
    assert cli.main([*common, "--n", "10", "--seed", "1"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "holds an earlier run (seed 1, 50 of 50 images, complete)" in err
    assert "--overwrite" in err and "--resume" in err and "Traceback" not in err
    assert cli.main([*common, "--n", "10", "--seed", "1", "--resume"]) == cli.EXIT_ERROR
    assert "differ in: latents_sha256, n" in capsys.readouterr().err
    (out / "notes.txt").write_text("mine")
    assert cli.main([*common, "--n", "10", "--seed", "1", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"img_{i:05d}.png" for i in range(10)] + ["latents.npy", "manifest.json", "notes.txt"])
    _check_generate_folder(out, model_128, 10, 1)


# -- phantom --------------------------------------------------------------------------------

def test_phantom_killed_three_times_then_rerun_is_exact(tmp_path):
    reference = write_phantoms(tmp_path / "ref", n=120, size=32, seed=5)
    out = tmp_path / "out"
    command = _cxrgan("phantom", "--n", "120", "--size", "32", "--seed", "5", "--out", str(out))
    for _ in range(3):
        _kill_during(command, out, RNG.uniform(0.0, 1.5))
    rerun = _run(command)
    assert rerun.returncode == 0, rerun.stderr
    names = sorted(p.name for p in out.glob("*.png"))
    entries = read_data_entry_csv(out / "Data_Entry_phantom.csv")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e.image_index for e in entries] == names == [image_name(p, f) for p, f in
                                                         layout(5, "chestxray14", 120)]
    assert manifest["n"] == 120 and manifest["complete"] is True
    assert _hidden(out) == []
    assert (out / "Data_Entry_phantom.csv").read_bytes() == (
        reference / "Data_Entry_phantom.csv").read_bytes()
    for name in names:
        assert (out / name).read_bytes() == (reference / name).read_bytes()


# -- convert --------------------------------------------------------------------------------

def test_convert_killed_then_rerun_matches_its_report(tmp_path):
    source = write_phantoms(tmp_path / "src", n=150, size=32, seed=1)
    out = tmp_path / "out"
    command = _cxrgan("convert", str(source), "--out", str(out))
    _kill_during(command, out, RNG.uniform(0.0, 1.0))
    rerun = _run(command)
    # Had the kill landed after the job finished, the folder holds a finished conversion.
    assert rerun.returncode == 0 or "holds a finished conversion" in rerun.stderr, rerun.stderr
    with open(out / "conversion_report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["status"] for r in rows} == {"converted", "skipped"}
    converted = sorted(r["output"] for r in rows if r["status"] == "converted")
    assert converted == sorted(p.name for p in out.glob("*.png")) and len(converted) == 150
    assert _hidden(out) == []


# -- the LCO archive ------------------------------------------------------------------------

def test_archive_killed_then_rerun_matches_its_csv_and_manifest(tmp_path):
    from cxrgan_desktop.engine.classifier.files import save_classifier
    from cxrgan_desktop.engine.classifier.model import ClassifierSpec, PathologyClassifier

    torch.manual_seed(1)
    config = PGGANConfig(latent_size=16, channels=(32, 16, 16, 8), image_channels=1)
    g = save_generator(tmp_path / "g.safetensors", Generator(config), OutputAdapter(), "g")
    c = save_classifier(tmp_path / "c.safetensors", PathologyClassifier(ClassifierSpec(
        "densenet-small", ("Cardiomegaly", "Effusion"), 32)), "c")
    out = tmp_path / "arch"
    command = _cxrgan("lco", "--model", str(g), "--classifier", str(c), "--labels",
                      "Cardiomegaly", "--threshold", "0.3", "--n", "12", "--steps", "4",
                      "--batch-size", "1", "--restarts", "0", "--device", "cpu",
                      "--out", str(out))
    _kill_during(command, out, RNG.uniform(0.0, 2.0))
    rerun = _run(command)
    assert rerun.returncode == 0, rerun.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    records = [json.loads((out / f"lco_{k:05d}.json").read_text())["lco"] for k in range(12)]
    accepted = sorted(r["file"] for r in records if r["success"])
    entries = read_data_entry_csv(out / "Data_Entry_lco.csv")
    assert manifest["complete"] is True and manifest["finished"] == 12
    assert manifest["accepted"] == len(accepted)
    assert sorted(e.image_index for e in entries) == accepted == sorted(
        p.name for p in out.glob("lco_*.png"))
    assert _hidden(out) == []


# -- full and read-only disks ---------------------------------------------------------------

def _fail_fsync_after(monkeypatch, calls: int, code: int) -> None:
    """Every fsync after the first ``calls`` fails as a full or read-only disk does."""
    real = os.fsync
    seen = []

    def fsync(fd: int) -> None:
        seen.append(fd)
        if len(seen) > calls:
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _one_clear_line(err: str, out: Path, what: str) -> str:
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"cxrgan: {out}") and what in line
    return line


@pytest.mark.parametrize("code, what", [(errno.ENOSPC, "no space left on device"),
                                        (errno.EROFS, "read-only file system")])
def test_generate_on_a_full_disk_says_one_line_and_claims_nothing(tmp_path, model_128, capsys,
                                                                  monkeypatch, code, what):
    out = tmp_path / "out"
    _fail_fsync_after(monkeypatch, 6, code)
    assert cli.main(["generate", "--model", str(model_128), "--n", "8", "--batch-size", "1",
                     "--device", "cpu", "--out", str(out)]) == cli.EXIT_ERROR
    line = _one_clear_line(capsys.readouterr().err, out, what)
    assert "--resume" in line  # what was kept, and how to finish
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert [e["file"] for e in manifest["images"]] == sorted(p.name for p in out.glob("img_*"))
    assert _hidden(out) == []


def test_phantom_on_a_full_disk_keeps_csv_and_manifest_together(tmp_path, capsys,
                                                                monkeypatch):
    out = tmp_path / "out"
    write_phantoms(out, n=3, size=32, seed=2)
    monkeypatch.setattr("cxrgan_desktop.tasks.phantom._SAVE_EVERY_S", 0.0)
    _fail_fsync_after(monkeypatch, 9, errno.ENOSPC)
    assert cli.main(["phantom", "--n", "20", "--size", "32", "--seed", "2",
                     "--out", str(out)]) == cli.EXIT_ERROR
    _one_clear_line(capsys.readouterr().err, out, "no space left on device")
    manifest = json.loads((out / "manifest.json").read_text())
    entries = read_data_entry_csv(out / "Data_Entry_phantom.csv")
    assert manifest["complete"] is False and manifest["n"] == len(entries) >= 3
    assert _hidden(out) == []
    monkeypatch.undo()
    assert cli.main(["phantom", "--n", "20", "--size", "32", "--seed", "2",
                     "--out", str(out)]) == 0
    assert len(read_data_entry_csv(out / "Data_Entry_phantom.csv")) == 20


def test_convert_and_import_model_on_a_full_disk(tmp_path, model_128, capsys, monkeypatch):
    source = write_phantoms(tmp_path / "src", n=6, size=32, seed=1)
    out = tmp_path / "out"
    _fail_fsync_after(monkeypatch, 3, errno.ENOSPC)
    assert cli.main(["convert", str(source), "--out", str(out)]) == cli.EXIT_ERROR
    _one_clear_line(capsys.readouterr().err, out, "no space left on device")
    with open(out / "conversion_report.csv", newline="") as handle:
        assert list(csv.DictReader(handle))[-1]["status"] == "incomplete"
    monkeypatch.undo()
    _fail_fsync_after(monkeypatch, 0, errno.ENOSPC)
    assert cli.main(["import-model", str(model_128), "--name", "x"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().endswith(")")
    assert "no space left on device" in err.strip().splitlines()[-1]
