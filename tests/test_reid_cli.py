"""``cxrgan reid train`` and ``cxrgan reid info`` end to end, on phantom patients with
follow-up images, and the refusals that name the file and the fix."""

from __future__ import annotations

import csv
import hashlib
import re

import pytest

from cxrgan_desktop.cli import main

pytestmark = pytest.mark.slow  # renders 120 phantoms (seconds to tens of seconds)


@pytest.fixture(scope="module")
def follow_up_phantoms(tmp_path_factory):
    """30 phantom patients of 4 images each, 32 px."""
    from cxrgan_desktop.tasks.phantom import write_phantoms

    folder = tmp_path_factory.mktemp("reid_phantoms")
    write_phantoms(folder, n=120, size=32, seed=5, images_per_patient=4)
    return folder, folder / "Data_Entry_phantom.csv"


def test_train_install_and_info(follow_up_phantoms, tmp_path, capsys):
    folder, labels = follow_up_phantoms
    out = tmp_path / "reid.safetensors"
    argv = ["reid", "train", "--data", str(folder), "--labels", str(labels), "--out", str(out),
            "--size", "32", "--epochs", "2", "--device", "cpu", "--install", "phantom-reid"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "(30 patients)" not in printed  # the split is reported per side
    assert re.search(r"24 patients\), 24 held-out images \(6 patients\)", printed), printed
    lines = printed.strip().splitlines()
    assert re.fullmatch(r"held-out verification AUROC: 0\.\d{4} \(36 same-patient, 240 "
                        r"different-patient pairs; untrained 0\.\d{4}\)", lines[-2]), lines[-2]
    assert re.fullmatch(r"held-out precision@1: \d\.\d{4} \(24 images; untrained \d\.\d{4}\)",
                        lines[-1]), lines[-1]

    from cxrgan_desktop.engine.reid.files import load_reid
    from cxrgan_desktop.engine.reid.installed import installed_reids, resolve_reid

    installed = resolve_reid("phantom-reid")
    assert installed_reids() == [installed]
    assert installed.read_bytes() == out.read_bytes()
    loaded = load_reid(installed)
    record = loaded.provenance
    assert record["images"] == 120 and record["patients"] == 30 and record["epochs"] == 2
    assert str(folder) in record["training_data"] and len(record["training_data_fingerprint"]) == 64
    assert f"{record['verification_auroc']:.4f}" in lines[-2]

    assert main(["reid", "info", "phantom-reid"]) == 0
    info = capsys.readouterr().out
    assert f"sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}" in info
    assert "compact" in info and "32 px, 128-d embedding" in info
    assert f"verification AUROC: {record['verification_auroc']:.4f}" in info

    assert main(argv) == 2  # the name is taken: refused before training
    assert "already installed" in capsys.readouterr().err
    assert main(["reid", "info", "no-such-reid"]) == 2
    assert "no installed re-identification model" in capsys.readouterr().err


def test_refusals_name_the_file_and_the_fix(follow_up_phantoms, tmp_path, capsys):
    folder, labels = follow_up_phantoms
    out = tmp_path / "x.safetensors"
    assert main(["reid", "train", "--data", str(folder), "--out", str(out),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "--labels" in err and "Patient ID" in err

    # the same images, each its own patient: nothing to learn a patient from
    with open(labels, newline="") as handle:
        rows = list(csv.reader(handle))
    column = rows[0].index("Patient ID")
    for k, row in enumerate(rows[1:]):
        row[column] = str(k + 1)
    singles = tmp_path / "singles.csv"
    with open(singles, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    assert main(["reid", "train", "--data", str(folder), "--labels", str(singles), "--out",
                 str(out), "--size", "32", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(singles) in err and "at least two images" in err
    assert not out.exists()

    assert main(["reid", "train", "--data", str(folder), "--labels", str(labels)]) == 2
    assert "--out" in capsys.readouterr().err
