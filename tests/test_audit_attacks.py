"""The memorisation audit attacked as a hostile or unlucky user would: crafted audit folders,
crafted model files, inputs that overlap, two writers, a kill, a full disk, DICOM copies.

Every case was first a failing script; each test says what the code must do instead. Audit
folders are written here by hand (the CSV with Python's csv module, the summary with json),
not with the code under test, so a crafted folder is exactly what an attacker could write.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest

from cxrgan_desktop.tasks.audit_file import (
    FORMAT,
    AuditFileError,
    AuditRow,
    SpaceMatch,
    audit_csv_text,
    neighbours_csv_text,
    read_audit,
    read_flagged,
)

HEADER = ["rank", "synthetic_file", "pixel_sha256", "flagged", "risk", "pixels_nearest_file",
          "pixels_patient", "pixels_similarity", "pixels_heldout_fraction", "pixels_flagged"]
DIGEST = "ab" * 32


def _crafted(folder: Path, rows: list[list[str]], summary: object | None = None,
             raw: bytes | None = None) -> Path:
    """An audit folder as an attacker writes it: any rows, and a summary that records the
    table's true SHA-256 (so the hash check passes and only the contents can be judged)."""
    folder.mkdir(parents=True, exist_ok=True)
    if raw is None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
        raw = buffer.getvalue().encode()
    (folder / "audit.csv").write_bytes(raw)
    if summary is None:
        summary = {"format": FORMAT, "alpha": 0.001,
                   "train": {"image_dir": str(folder.parent / "train")},
                   "synthetic": {"root": str(folder.parent / "synthetic")},
                   "spaces": {"pixels": {"threshold_similarity": 0.9}},
                   "files": {"audit.csv": {"sha256": hashlib.sha256(raw).hexdigest()}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _row(synthetic: str, training: str, flagged: str = "true") -> list[str]:
    return ["1", synthetic, DIGEST, flagged, "1.0", training, "900001", "0.99", "0.0",
            flagged]


# -- 3. a hostile audit.csv ---------------------------------------------------------------------

@pytest.mark.parametrize("synthetic, training", [
    ("../secret.png", "a.png"),                 # the synthetic file climbs out
    ("a.png", "/etc/passwd"),                   # an absolute training file
    ("a.png", "sub/../../secret.png"),          # climbs out after a step in
    ("sub/../../../etc/passwd", "a.png"),
    ("", "a.png"),                              # the root itself
    ("a.png", "."),
])
def test_a_row_pointing_outside_its_root_is_refused(tmp_path, synthetic, training):
    """Nothing outside the recorded roots is ever named: read_audit, read_flagged (which
    the exclusions use) and the pair view's paths all refuse, naming the file and line."""
    folder = _crafted(tmp_path / "audit", [_row(synthetic, training)])
    with pytest.raises(AuditFileError, match=r"audit\.csv, line 2: .*not a path inside"):
        read_audit(folder)
    with pytest.raises(AuditFileError, match="not a path inside"):
        read_flagged(folder / "audit.csv")


def test_the_report_refuses_to_join_a_climbing_path_given_to_it_directly(tmp_path):
    """AuditReport's paths check again: a report built in memory (not read) cannot be made
    to name a file outside its roots either."""
    from cxrgan_desktop.tasks.audit_file import AuditReport

    summary = {"train": {"image_dir": str(tmp_path / "train")},
               "synthetic": {"root": str(tmp_path / "synthetic")}}
    match = SpaceMatch("../../etc/passwd", "1", 0.9, 0.0, True)
    row = AuditRow(1, "../x.png", DIGEST, True, 1.0, {"pixels": match})
    report = AuditReport(tmp_path, [row], ("pixels",), summary)
    with pytest.raises(AuditFileError, match="not a path inside"):
        report.synthetic_path(row)
    with pytest.raises(AuditFileError, match="not a path inside"):
        report.training_path(match)


def test_nested_relative_paths_and_odd_names_inside_the_root_are_read(tmp_path):
    names = ["sub/dir/a.png", "b c.png", "..hidden..png", "a..b.png", "x\\y.png"]
    folder = _crafted(tmp_path / "audit", [_row(n, n) for n in names])
    report = read_audit(folder)
    root = tmp_path / "synthetic"
    assert [report.synthetic_path(r) for r in report.rows] == [root / n for n in names]


def test_formula_cells_are_written_safe_and_read_back_unchanged(tmp_path):
    """Every text that a spreadsheet would run starts with an apostrophe in the file (read
    with Python's csv module), and read_audit gives each text back exactly, including texts
    that themselves start with apostrophes."""
    texts = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "'=x",
             "''+y", "'plain", "'", "plain", "a=b", "a\rb", "c\nd", "e\r\nf"]
    rows = [AuditRow(i + 1, f"{t}.png", DIGEST, False, 0.5,
                     {"pixels": SpaceMatch(f"{t}.png", t, 0.5, 0.5, False)})
            for i, t in enumerate(texts)]
    table = audit_csv_text(rows, ("pixels",))
    folder = _crafted(tmp_path / "audit", [], raw=table.encode())
    with (folder / "audit.csv").open(newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    for cells in written:
        for column in ("synthetic_file", "pixels_nearest_file", "pixels_patient"):
            assert not cells[column].lstrip("'")[:1] or cells[column][0] not in "=+-@\t\r"
    assert [c["pixels_patient"] for c in written][:6] == ["'" + t for t in texts[:6]]
    report = read_audit(folder)
    assert [r.synthetic_file for r in report.rows] == [f"{t}.png" for t in texts]
    assert [r.matches["pixels"].patient for r in report.rows] == texts
    assert [r.matches["pixels"].training_file for r in report.rows] == [f"{t}.png"
                                                                        for t in texts]
    text = neighbours_csv_text([("=a.png", "pixels", 1, "-b.png", "@p", 0.5)])
    assert list(csv.reader(io.StringIO(text)))[1] == ["'=a.png", "pixels", "1", "'-b.png",
                                                      "'@p", "0.5"]


@pytest.mark.parametrize("summary", [
    [1, 2], "text", None,
    {"format": FORMAT, "files": []},
    {"format": FORMAT, "files": {"audit.csv": "abc"}},
    {"format": FORMAT, "files": {"audit.csv": {"sha256": 5}}},
])
def test_a_summary_that_is_not_the_audits_object_is_refused(tmp_path, summary):
    folder = tmp_path / "audit"
    _crafted(folder, [_row("a.png", "b.png")], summary={})
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(AuditFileError, match=r"summary\.json"):
        read_audit(folder)


@pytest.mark.parametrize("broken", ["synthetic", "train", "spaces", "root"])
def test_a_summary_with_the_right_hash_but_broken_parts_is_refused(tmp_path, broken):
    folder = _crafted(tmp_path / "audit", [_row("a.png", "b.png")])
    summary = json.loads((folder / "summary.json").read_text())
    if broken == "root":
        summary["synthetic"]["root"] = ["/"]
    else:
        summary[broken] = "nothing" if broken != "spaces" else {"pixels": 3}
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(AuditFileError, match=r"summary\.json: .* not an object|not a text"):
        read_flagged(folder)


@pytest.mark.parametrize("raw", [
    bytes(range(256)) * 4,                                       # binary
    (",".join(HEADER) + "\n1," + "a" * 300_000 + "\n").encode(),  # one huge cell
    (",".join(HEADER) + "\n" + ",".join(_row("a.png", "b.png")[:-1]) + ',"open\n').encode(),
    (",".join(HEADER) + "\n" + ",".join(_row("a.png", "b.png")).replace(DIGEST, "zz")
     + "\n").encode(),                                           # not a SHA-256
])
def test_a_binary_huge_or_malformed_table_is_refused_with_the_file_named(tmp_path, raw):
    folder = _crafted(tmp_path / "audit", [], raw=raw)
    with pytest.raises(AuditFileError, match=r"audit\.csv"):
        read_audit(folder)


# -- a small scene: phantom patients, training and held-out by patient ----------------------

@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """8 training and 6 held-out phantom patients, 2 images each (32 px), and a synthetic
    folder of 3 images: an exact copy of a training image and two held-out images renamed
    (other patients: not flagged)."""
    import shutil

    from cxrgan_desktop.tasks.phantom import CSV_NAME, write_phantoms

    root = tmp_path_factory.mktemp("attack_scene")
    every = write_phantoms(root / "phantoms", n=28, size=32, seed=3, images_per_patient=2)
    with (every / CSV_NAME).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), list(reader)
    patients = sorted({r["Patient ID"] for r in rows}, key=int)
    train, held, synthetic = root / "train", root / "held", root / "synthetic"
    for folder in (train, held, synthetic):
        folder.mkdir()
    kept: dict[Path, list[dict[str, str]]] = {train: [], held: []}
    for r in rows:
        folder = train if r["Patient ID"] in patients[:8] else held
        shutil.copy2(every / r["Image Index"], folder / r["Image Index"])
        kept[folder].append(r)
    for folder, name in ((train, "Data_Entry_train.csv"), (held, "Data_Entry_held.csv")):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept[folder])
        (folder / name).write_text(buffer.getvalue(), encoding="utf-8")
    shutil.copyfile(train / kept[train][0]["Image Index"], synthetic / "copy.png")
    for k, r in enumerate(kept[held][:2]):
        shutil.copyfile(held / r["Image Index"], synthetic / f"other_{k}.png")
    return root


def _options(scene: Path, out: Path, **changes):
    from cxrgan_desktop.tasks.audit import AuditOptions

    given = dict(train_dir=scene / "train", out_dir=out, synthetic=str(scene / "synthetic"),
                 held_out=scene / "held", labels_csv=scene / "train" / "Data_Entry_train.csv",
                 spaces=("pixels",))
    given.update(changes)
    return AuditOptions(**given)


def _cli_args(scene: Path, out: Path, *extra: str) -> list[str]:
    return ["audit", "--train", str(scene / "train"), "--labels",
            str(scene / "train" / "Data_Entry_train.csv"), "--synthetic",
            str(scene / "synthetic"), "--held-out", str(scene / "held"), "--spaces", "pixels",
            "--device", "cpu", "--out", str(out), *extra]


def _consistent(out: Path) -> dict:
    """The audit folder agrees with itself, checked with hashlib and json (not the reader):
    every file summary.json lists has the recorded SHA-256; no temporary file is left."""
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["files"]) == {"audit.csv", "neighbours.csv", "contact_sheet.png",
                                     "contact_sheet.pdf"}
    for name, record in summary["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == record["sha256"], name
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    return summary


# -- 1. inputs that are each other ------------------------------------------------------------

def test_a_plain_audit_of_the_scene_flags_the_copy(scene, tmp_path):
    from cxrgan_desktop.tasks.audit import run_audit

    report = run_audit(_options(scene, tmp_path / "a"))
    assert {r.synthetic_file: r.flagged for r in report.rows} == {
        "copy.png": True, "other_0.png": False, "other_1.png": False}
    _consistent(tmp_path / "a")


@pytest.mark.parametrize("case", ["synthetic_is_train", "synthetic_in_train",
                                  "train_in_synthetic", "held_is_synthetic",
                                  "held_is_train_no_ids"])
def test_inputs_that_are_the_same_files_are_refused_before_anything_is_written(
        scene, tmp_path, case):
    """Each of these ran before and gave a confident wrong answer (all flagged, or none:
    a held-out folder equal to the training folder, without patient ids to compare, set the
    threshold at similarity 1)."""
    import shutil

    from cxrgan_desktop.tasks.audit import run_audit

    train = tmp_path / "train"
    shutil.copytree(scene / "train", train)
    changes: dict = {"train_dir": train}
    if case == "synthetic_is_train":
        changes["synthetic"] = str(train)
        expected = "16 of the 16 synthetic images are training images"
    elif case == "synthetic_in_train":
        shutil.copytree(scene / "synthetic", train / "generated")
        changes.update(synthetic=str(train / "generated"), labels_csv=None)
        expected = "3 of the 3 synthetic images are training images"
    elif case == "train_in_synthetic":
        outer = tmp_path / "outer"
        shutil.copytree(scene / "synthetic", outer)
        shutil.copytree(scene / "train", outer / "train")
        changes.update(train_dir=outer / "train", synthetic=str(outer), labels_csv=None)
        expected = "16 of the 19 synthetic images are training images"
    elif case == "held_is_synthetic":
        changes["held_out"] = scene / "synthetic"
        expected = "3 of the 3 synthetic images are held-out images"
    else:  # no label file and names without patient ids: the patient check cannot help
        plain = tmp_path / "plain"
        plain.mkdir()
        for k, path in enumerate(sorted((scene / "train").glob("*.png"))):
            shutil.copyfile(path, plain / f"image_{k:02d}.png")
        changes.update(train_dir=plain, held_out=plain, labels_csv=None)
        expected = "16 of the 16 held-out images are training images"
    out = tmp_path / "audit"
    with pytest.raises(ValueError, match=expected):
        run_audit(_options(scene, out, **changes))
    assert not (out / "audit.csv").exists()


@pytest.mark.parametrize("inside", ["train", "held", "synthetic"])
def test_an_audit_folder_inside_an_input_folder_is_refused_before_it_is_made(
        scene, tmp_path, inside):
    import shutil

    from cxrgan_desktop.tasks.audit import run_audit

    for name in ("train", "held", "synthetic"):
        shutil.copytree(scene / name, tmp_path / name)
    out = tmp_path / inside / "audit"
    options = _options(tmp_path, out)
    with pytest.raises(ValueError, match="audit folder is inside the .* folder"):
        run_audit(options)
    assert not out.exists()
    with pytest.raises(ValueError, match="inside the"):  # the folder itself, too
        run_audit(_options(tmp_path, tmp_path / inside))


def test_an_unknown_reid_name_is_a_one_line_error_not_a_traceback(scene, tmp_path, capsys):
    from cxrgan_desktop.cli import main

    code = main(_cli_args(scene, tmp_path / "a", "--spaces", "pixels,reid", "--reid",
                          "no-such-model"))
    err = capsys.readouterr().err
    assert code == 2
    assert "cxrgan: error: no-such-model: no such file" in err and "cxrgan reid train" in err
    assert "Traceback" not in err


# -- 2. two writers, and a kill -----------------------------------------------------------------

_BLOCKING_CHILD = """
import os, sys, time
from pathlib import Path
import cxrgan_desktop.core.fileio as fileio
out, block_at, marker = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
real, seen = os.replace, []
def replace(source, target):
    if Path(target).parent == out:  # the audit folder's renames only
        seen.append(Path(target).name)
        if len(seen) == block_at:
            marker.write_text(",".join(seen))
            time.sleep(600)
    return real(source, target)
fileio.os.replace = replace
from cxrgan_desktop.cli import main
sys.exit(main(sys.argv[4:]))
"""


def test_a_second_audit_is_refused_at_once_and_a_kill_between_renames_is_detected(
        scene, tmp_path, capsys):
    """A first audit of 3 images; then an audit of 2 (another table) is killed (SIGKILL)
    after its first rename. Meanwhile a second writer is refused, naming the process. The
    killed folder is refused by read_audit (its table is not the one the summary records),
    nothing half-written lies under a final name, and the rerun leaves it consistent."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from cxrgan_desktop.cli import main

    out = tmp_path / "audit"
    assert main(_cli_args(scene, out)) == 0
    first = _consistent(out)
    capsys.readouterr()
    marker = tmp_path / "blocked"
    child = subprocess.Popen(
        [sys.executable, "-c", _BLOCKING_CHILD, str(out), "2", str(marker),
         *_cli_args(scene, out, "--n", "2")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        for _ in range(6000):  # wait for it to reach the renames (no time is asserted)
            if marker.exists() or child.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), child.communicate()[1].decode()[-2000:]
        assert marker.read_text() == "audit.csv,neighbours.csv"

        assert main(_cli_args(scene, out)) == 2  # the second writer
        err = capsys.readouterr().err
        assert f"is being written by process {child.pid}" in err
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    with pytest.raises(AuditFileError, match="changed since the audit wrote it"):
        read_audit(out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary == first  # the summary is the earlier one, whole
    for name in ("neighbours.csv", "contact_sheet.png", "contact_sheet.pdf"):
        data = (out / name).read_bytes()  # not yet renamed: the earlier run's, whole
        assert hashlib.sha256(data).hexdigest() == first["files"][name]["sha256"], name
    with (out / "audit.csv").open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))  # renamed: the killed run's table, whole
    assert len(table) == 2 and all(len(r) == len(HEADER) for r in table)

    assert main(_cli_args(scene, out)) == 0  # the rerun: consistent, orphans removed
    again = _consistent(out)
    assert again["synthetic"]["images"] == 3
    assert len(read_audit(out).rows) == 3
    assert not (out / ".cxrgan.lock").exists()


# -- 6. a full disk -------------------------------------------------------------------------

def test_a_full_disk_on_the_second_file_changes_nothing_and_says_so_in_one_line(
        scene, tmp_path, capsys, monkeypatch):
    import errno

    import cxrgan_desktop.core.fileio as fileio
    from cxrgan_desktop.cli import main

    out = tmp_path / "audit"
    assert main(_cli_args(scene, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    real, seen = fileio._write_temp, []

    def full(target, mode, data):
        if target.parent == out:
            seen.append(target.name)
            if len(seen) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(target, mode, data)

    monkeypatch.setattr(fileio, "_write_temp", full)
    assert main(_cli_args(scene, out, "--n", "2")) == 2
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("cxrgan:")]
    assert said == [f"cxrgan: {out / 'neighbours.csv'}: no space left on device (stopped; "
                    f"nothing half-written in {out}; cached features are kept for the next "
                    "run)"]
    assert "Traceback" not in err
    assert seen == ["audit.csv", "neighbours.csv"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier audit
    _consistent(out)


# -- 4. crafted re-identification files -----------------------------------------------------

class _Payload:
    """Unpickling this creates the marker file (``open(path, "w")``): if the marker exists
    after a load, the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _crafted_reid_files(folder: Path, marker: Path) -> dict[str, str]:
    """file name -> what the refusal must say. Written with pickle, torch.save and
    safetensors directly."""
    import pickle

    import torch
    from safetensors.torch import save as safetensors_bytes

    from cxrgan_desktop.engine.reid.files import FORMAT, FORMAT_VERSION
    from cxrgan_desktop.engine.reid.model import ReidNet, ReidSpec

    folder.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": {"w": _Payload(marker)}}
    (folder / "pickle.safetensors").write_bytes(pickle.dumps(payload, protocol=2))
    torch.save(payload, folder / "torch_zip.safetensors")
    torch.save(payload, folder / "torch_zip.pt")
    (folder / "legacy.pth").write_bytes(pickle.dumps(payload, protocol=4))
    net = ReidNet(ReidSpec(input_size=32, widths=(4, 8)))
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    conv = next(k for k, v in weights.items() if v.ndim == 4)
    weights[conv] = torch.zeros(3, 3, 3, 3)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec": net.spec.to_json(),
                "provenance": "{}"}
    (folder / "shapes.safetensors").write_bytes(safetensors_bytes(weights, metadata=metadata))
    return {"pickle.safetensors": "not a safetensors file",
            "torch_zip.safetensors": "not a safetensors file",
            "torch_zip.pt": "not a safetensors file", "legacy.pth": "not a safetensors file",
            "shapes.safetensors": f"(?s)weights do not fit.*{conv}: file has shape "
                                  "\\[3, 3, 3, 3\\]"}


def test_crafted_reid_files_are_refused_without_running_their_code(tmp_path, scene, capsys):
    """load_reid, the audit and `cxrgan reid info` refuse each file, naming it; the pickled
    payload never runs (its marker file never appears)."""
    from cxrgan_desktop.cli import main
    from cxrgan_desktop.core.model_errors import CheckpointError
    from cxrgan_desktop.engine.reid.files import load_reid
    from cxrgan_desktop.tasks.audit import run_audit

    marker = tmp_path / "payload_ran"
    files = _crafted_reid_files(tmp_path / "models", marker)
    for name, why in files.items():
        path = tmp_path / "models" / name
        with pytest.raises(CheckpointError, match=why) as refused:
            load_reid(path)
        assert str(path) in str(refused.value)
        with pytest.raises(CheckpointError, match=why):
            run_audit(_options(scene, tmp_path / f"audit_{name}", spaces=("pixels", "reid"),
                               reid_model=str(path)))
        assert not (tmp_path / f"audit_{name}" / "audit.csv").exists()
        assert main(["reid", "info", str(path)]) == 2
        assert f"cxrgan: error: {path}" in capsys.readouterr().err
        assert main(_cli_args(scene, tmp_path / "cli", "--spaces", "pixels,reid", "--reid",
                              str(path))) == 2
        err = capsys.readouterr().err
        assert f"cxrgan: error: {path}" in err and "Traceback" not in err
    assert not marker.exists()
    import pickle  # the control: the same payload, unpickled, does create the marker

    pickle.loads((tmp_path / "models" / "legacy.pth").read_bytes())
    assert marker.exists()


# -- 5. a flagged image exported as DICOM, then offered to a reader study -------------------

@pytest.mark.parametrize("window", [None, "30000,20000"])
def test_a_flagged_image_exported_as_dicom_is_never_drawn_into_a_study(tmp_path, capsys,
                                                                       window):
    """`cxrgan generate` writes 6 images of seed 5 as 16-bit PNGs (audited: numbers 1 and 4
    flagged, hashed from the PNGs as Pillow reads them) and again as DICOM, with the default
    window or a narrow one. A study drawn from the DICOM folder must leave out the two
    flagged images. With the narrow window the reader's pixels differ from the PNG's, and
    before the fix both were drawn; the stored values (pydicom) are the PNG's."""
    import numpy as np
    import pydicom
    from PIL import Image

    from cxrgan_desktop.cli import main
    from cxrgan_desktop.imaging.pixel_hash import pixel_sha256
    from cxrgan_desktop.tasks.phantom import write_phantoms

    common = ["--model", "demo-phantom-64", "--n", "6", "--seed", "5", "--device", "cpu"]
    assert main(["generate", *common, "--out", str(tmp_path / "png")]) == 0
    extra = ["--window", window] if window else []
    assert main(["generate", *common, "--format", "dicom", *extra,
                 "--out", str(tmp_path / "dicom")]) == 0
    pngs = sorted((tmp_path / "png").glob("img_*.png"))
    hashes = []
    for path in pngs:
        with Image.open(path) as image:
            hashes.append(pixel_sha256(np.asarray(image).astype(np.float64) / 65535.0))
    dicoms = sorted((tmp_path / "dicom").glob("img_*.dcm"))
    for path, digest in zip(dicoms, hashes, strict=True):  # the same stored values
        stored = pydicom.dcmread(path)
        assert pixel_sha256(stored.pixel_array.astype(np.float64) / 65535.0) == digest
        assert float(stored.WindowWidth) == (20000.0 if window else 65536.0)
    flags = [str(k in (1, 4)).lower() for k in range(len(pngs))]
    rows = [["1", p.name, h, f, "1.0", "t.png", "900001", "0.99", "0.0", f]
            for p, h, f in zip(pngs, hashes, flags, strict=True)]
    audit = _crafted(tmp_path / "audit", rows)
    summary = json.loads((audit / "summary.json").read_text())
    summary["synthetic"]["root"] = str(tmp_path / "png")  # flagged by pixels only
    (audit / "summary.json").write_text(json.dumps(summary))
    real = write_phantoms(tmp_path / "real", n=6, size=64, seed=1, images_per_patient=1)
    capsys.readouterr()

    code = main(["study", "build", "--real", str(real), "--synthetic", str(tmp_path / "dicom"),
                 "--n-real", "3", "--n-synthetic", "4", "--seed", "3", "--size", "64",
                 "--exclude-flagged", str(audit), "--out", str(tmp_path / "study")])
    said = capsys.readouterr().out
    assert code == 0, said
    assert "2 flagged synthetic image(s) left out of the draw" in said
    key = json.loads(next((tmp_path / "study").glob("*.key.json")).read_text())
    drawn = sorted(Path(c["source"]).name for c in key["cases"].values()
                   if c["truth"] == "synthetic")
    assert drawn == ["img_00000.dcm", "img_00002.dcm", "img_00003.dcm", "img_00005.dcm"]
    assert sorted(Path(f).name for f in key["built"]["exclude_flagged"]["excluded_files"]) \
        == ["img_00001.dcm", "img_00004.dcm"]


def test_the_pair_view_shows_crafted_names_as_plain_text(qtbot, tmp_path):
    """A crafted audit's patient id or file name holding markup (``<img src=...>`` would
    make a rich-text label read that file) is shown as the text it is, in the titles and in
    each viewer's overlay."""
    import numpy as np
    from PIL import Image
    from PySide6 import QtGui
    from PySide6.QtCore import Qt

    from cxrgan_desktop.gui.viewer.pair import PairView, read_pair

    outside = tmp_path / "outside.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(outside)
    for name in ("s.png", "t.png"):
        Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / name)
    markup = f"<img src='{outside}'><b>bold</b>"
    view = PairView()
    qtbot.addWidget(view)
    pair = read_pair(tmp_path / "s.png", tmp_path / "t.png", (f"synthetic {markup}",),
                     (f"training, patient {markup}",))
    view.show_pair(pair, f"Synthetic #1: {markup}", f"Nearest: patient {markup}")
    assert QtGui.Qt.mightBeRichText(view.titles[1].text())  # Qt would take it for markup
    for label in (*view.titles, view.synthetic.overlay, view.training.overlay):
        assert label.textFormat() == Qt.TextFormat.PlainText  # but is told not to
    assert view.titles[1].text() == f"Nearest: patient {markup}"
    assert view.training.overlay.text().startswith(f"training, patient {markup}")
