"""``--exclude-flagged``: images a memorisation audit flagged stay out of reader studies,
LCO archives, ``cxrgan generate`` and the window's export, and every manifest says so.

The audit folders are written by hand with the audit's own writer functions (the audit job
itself is not needed), flagging chosen images by the pixel hash of the file read back with
PIL or pydicom, never with the reader the code under test uses. What comes out is checked
the same way: files read back with PIL and pydicom, the answer key read as JSON.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from cxrgan_desktop.cli import main
from cxrgan_desktop.imaging.pixel_hash import pixel_sha256
from cxrgan_desktop.study.design import StudySettings
from cxrgan_desktop.tasks.audit_file import (
    FORMAT,
    AuditFileError,
    AuditRow,
    SpaceMatch,
    audit_csv_text,
    ranked,
    summary_text,
)
from cxrgan_desktop.tasks.study_build import StudyPlan, build_study

# -- an audit folder, written by hand -------------------------------------------------------


def pil_pixels(path: Path) -> np.ndarray:
    """A PNG's pixels in [0, 1] as Pillow reads them (8- or 16-bit greyscale)."""
    with Image.open(path) as image:
        scale = 255.0 if image.mode == "L" else 65535.0
        return np.asarray(image).astype(np.float64) / scale


def dicom_pixels(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array.astype(np.float64) / 65535.0


def write_audit(folder: Path, synthetic_root: Path, images: dict[str, str],
                flagged: set[str]) -> Path:
    """An audit folder as ``cxrgan audit`` writes it: ``images`` maps a synthetic file
    (relative to ``synthetic_root``) to its pixel hash; those in ``flagged`` are flagged."""
    rows = []
    for name, digest in images.items():
        hit = name in flagged
        match = SpaceMatch(f"train/{name}", "00000001", 0.99 if hit else 0.5,
                           0.0 if hit else 0.4, hit)
        rows.append(AuditRow(0, name, digest, hit, 1.0 if hit else 0.6, {"pixels": match}))
    folder.mkdir(parents=True, exist_ok=True)
    table = audit_csv_text(ranked(rows), ("pixels",))
    (folder / "audit.csv").write_text(table, encoding="utf-8")
    summary = {"format": FORMAT, "alpha": 0.001,
               "synthetic": {"root": str(synthetic_root)},
               "train": {"image_dir": str(folder / "train")},
               "spaces": {"pixels": {"threshold_similarity": 0.97}},
               "files": {"audit.csv": {"sha256": hashlib.sha256(
                   table.encode("utf-8")).hexdigest()}}}
    (folder / "summary.json").write_text(summary_text(summary), encoding="utf-8")
    return folder


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- reader studies ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def study_sources(phantom_study_sources):
    return phantom_study_sources(12, 32, (1, 2))


def _synthetic_cases(key_path: Path) -> list[str]:
    key = json.loads(key_path.read_text(encoding="utf-8"))
    return sorted(case["source"] for case in key["cases"].values()
                  if case["truth"] == "synthetic")


def test_a_study_from_a_folder_never_draws_a_flagged_image_even_renamed(study_sources,
                                                                         tmp_path):
    real, synthetic = study_sources
    files = sorted(synthetic.glob("*.png"))
    hashes = {p.name: pixel_sha256(pil_pixels(p)) for p in files}
    flagged = {files[1].name, files[4].name, files[7].name}
    audit = write_audit(tmp_path / "audit", synthetic, hashes, flagged)
    # the study reads a copy where every file is renamed: only the pixels can tell
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for k, path in enumerate(files):
        shutil.copy(path, renamed / f"copy_{k:03d}_{path.stem[::-1]}.png")
    flagged_copies = {str(p) for p in renamed.iterdir()
                      if pixel_sha256(pil_pixels(p)) in {hashes[n] for n in flagged}}
    assert len(flagged_copies) == 3

    plan = StudyPlan([str(real)], 4, len(files) - 3, synthetic=[str(renamed)], seed=3,
                     settings=StudySettings(image_size=64), exclude_flagged=str(audit))
    result = build_study(plan, tmp_path / "study", "s")
    drawn = _synthetic_cases(result.key)
    assert set(drawn) == {str(p) for p in renamed.iterdir()} - flagged_copies
    assert sorted(result.excluded) == sorted(flagged_copies)
    record = json.loads(result.key.read_text())["built"]["exclude_flagged"]
    assert record["audit_sha256"] == sha256_of(audit / "audit.csv")
    assert record["audit_csv"] == str((audit / "audit.csv").resolve())
    assert record["excluded"] == 3 and sorted(record["excluded_files"]) == sorted(
        flagged_copies)
    assert record["flagged_images"] == 3 and record["audited_images"] == len(files)
    assert record["thresholds"] == {"pixels": 0.97, "alpha": 0.001}
    assert result.audit.passed, result.audit.text()

    # one more than is left: refused, saying how many were left out and how many are left
    short = StudyPlan([str(real)], 4, len(files) - 2, synthetic=[str(renamed)], seed=3,
                      settings=StudySettings(image_size=64), exclude_flagged=str(audit))
    with pytest.raises(ValueError, match=r"3 synthetic image\(s\) flagged.*only 9 readable "
                       r"image\(s\) are left; the study asks for 10"):
        build_study(short, tmp_path / "short", "s")
    assert not (tmp_path / "short").exists() or not any((tmp_path / "short").iterdir())


def _entries(package: Path) -> tuple[list[tuple], dict]:
    """What a reader can see of a package besides the case ids: each entry's size, date,
    compression and attributes, in order, and study.json with the ids blanked."""
    with zipfile.ZipFile(package) as archive:
        infos = [(i.file_size, i.compress_type, i.date_time, i.external_attr,
                  len(i.filename), i.filename.split("/")[0]) for i in archive.infolist()]
        manifest = json.loads(archive.read("study.json"))
    manifest["study_id"] = "-"
    manifest["cases"] = ["-"] * len(manifest["cases"])
    # practice items come in a secret order (the operating system's randomness): compare
    # what a reader can learn from them, the multiset, not the draw
    manifest["practice"] = sorted(({**p, "id": "-"} for p in manifest["practice"]),
                                  key=lambda p: json.dumps(p, sort_keys=True))
    return infos, manifest


def test_a_blinded_package_shows_no_trace_of_the_exclusion(study_sources, tmp_path):
    from cxrgan_desktop.study.key import read_key
    from tests.test_study_design import assert_blind

    real, synthetic = study_sources
    files = sorted(synthetic.glob("*.png"))
    hashes = {p.name: pixel_sha256(pil_pixels(p)) for p in files}
    settings = StudySettings(image_size=64)
    plain = build_study(StudyPlan([str(real)], 5, 5, synthetic=[str(synthetic)], seed=4,
                                  practice=1, settings=settings), tmp_path / "plain", "s")
    first = _synthetic_cases(plain.key)[:2]  # images the plain draw used: flag them
    audit = write_audit(tmp_path / "audit", synthetic, hashes, {Path(p).name for p in first})
    audited = build_study(StudyPlan([str(real)], 5, 5, synthetic=[str(synthetic)], seed=4,
                                    practice=1, settings=settings,
                                    exclude_flagged=str(audit / "audit.csv")),
                          tmp_path / "audited", "s")
    assert sorted(audited.excluded) == sorted(first)
    assert not set(first) & set(_synthetic_cases(audited.key))
    assert audited.audit.passed, audited.audit.text()
    # the same entries, sizes, dates and manifest: only which images differs
    assert _entries(audited.package) == _entries(plain.package)
    assert sorted(p.name for p in (tmp_path / "audited").iterdir()) == sorted(
        p.name for p in (tmp_path / "plain").iterdir())
    with zipfile.ZipFile(audited.package) as archive:
        manifest = json.loads(archive.read("study.json"))
        text = b"".join(archive.read(name) for name in archive.namelist())
    assert_blind(manifest, read_key(audited.key), settings)
    for trace in (sha256_of(audit / "audit.csv"), str(audit), "audit.csv", "flagged",
                  "exclu", *(Path(p).name for p in first)):
        assert trace.encode() not in text, trace


def test_a_study_from_a_model_draws_further_seeds_past_flagged_samples(
        study_sources, phantom_generator, tmp_path):
    from cxrgan_desktop.tasks.generate import generate_to_folder

    real, _ = study_sources
    samples = tmp_path / "samples"
    generate_to_folder(phantom_generator, samples, n=6, seed=2)
    files = sorted(samples.glob("img_*.png"))
    hashes = {p.name: pixel_sha256(pil_pixels(p)) for p in files}
    audit = write_audit(tmp_path / "audit", samples, hashes, {files[1].name, files[2].name})
    plan = StudyPlan([str(real)], 3, 4, model=str(phantom_generator.path), seed=2,
                     settings=StudySettings(image_size=64), exclude_flagged=str(audit))
    result = build_study(plan, tmp_path / "study", "m")
    name = phantom_generator.name
    assert _synthetic_cases(result.key) == sorted(f"model:{name}#seed2/{i}"
                                                  for i in (0, 3, 4, 5))
    assert result.excluded == [f"model:{name}#seed2/{i}" for i in (1, 2)]
    assert result.audit.passed, result.audit.text()


def test_a_damaged_or_edited_audit_is_refused_before_anything_is_written(study_sources,
                                                                          tmp_path, capsys):
    real, synthetic = study_sources
    files = sorted(synthetic.glob("*.png"))
    audit = write_audit(tmp_path / "audit", synthetic,
                        {p.name: pixel_sha256(pil_pixels(p)) for p in files}, {files[0].name})
    table = audit / "audit.csv"
    table.write_text(table.read_text().replace("true", "false", 1))  # "unflag" by hand
    plan = StudyPlan([str(real)], 3, 3, synthetic=[str(synthetic)],
                     settings=StudySettings(image_size=64), exclude_flagged=str(audit))
    with pytest.raises(AuditFileError, match="audit.csv: changed since the audit"):
        build_study(plan, tmp_path / "out", "s")
    assert not (tmp_path / "out").exists()
    assert main(["study", "build", "--real", str(real), "--synthetic", str(synthetic),
                 "--n-real", "3", "--n-synthetic", "3", "--size", "64", "--out",
                 str(tmp_path / "cli"), "--exclude-flagged", str(audit)]) == 2
    assert f"{table}: changed since the audit" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()
    (audit / "audit.csv").write_bytes(b"\xff\xfe damaged")
    assert main(["study", "build", "--real", str(real), "--synthetic", str(synthetic),
                 "--n-real", "3", "--n-synthetic", "3", "--size", "64", "--out",
                 str(tmp_path / "cli"), "--exclude-flagged", str(audit)]) == 2
    assert str(table) in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


def test_the_study_cli_prints_what_the_audit_left_out(study_sources, tmp_path, capsys):
    real, synthetic = study_sources
    files = sorted(synthetic.glob("*.png"))
    audit = write_audit(tmp_path / "audit", synthetic,
                        {p.name: pixel_sha256(pil_pixels(p)) for p in files},
                        {p.name for p in files[:5]})
    assert main(["study", "build", "--real", str(real), "--synthetic", str(synthetic),
                 "--n-real", "3", "--n-synthetic", "7", "--size", "64", "--out",
                 str(tmp_path / "cli"), "--exclude-flagged", str(audit)]) == 0
    out = capsys.readouterr().out
    assert "5 flagged synthetic image(s) left out" in out and "answer key only" in out
    assert set(_synthetic_cases(tmp_path / "cli" / "study.key.json")) == {
        str(p) for p in files[5:]}


def test_the_study_builder_dialog_excludes_flagged_images(qtbot, study_sources, tmp_path):
    pytest.importorskip("pytestqt")
    from cxrgan_desktop.core.settings import StudyPreferences
    from cxrgan_desktop.gui.panels.study_builder import StudyBuilderDialog

    real, synthetic = study_sources
    files = sorted(synthetic.glob("*.png"))
    audit = write_audit(tmp_path / "audit", synthetic,
                        {p.name: pixel_sha256(pil_pixels(p)) for p in files},
                        {p.name for p in files[:4]})
    preferences = StudyPreferences(real=[str(real)], synthetic=[str(synthetic)], n_real=3,
                                  n_synthetic=8, practice=0, image_size=256,
                                  out_folder=str(tmp_path / "out"), name="panel")
    dialog = StudyBuilderDialog(preferences)
    qtbot.addWidget(dialog)
    assert "flagged" in dialog.exclude_flagged.toolTip()
    dialog.exclude_flagged.setText(str(audit / "audit.csv"))
    with qtbot.waitSignal(dialog.built, timeout=60_000) as blocker:
        dialog.controls.run_button.click()
    result = blocker.args[0]
    assert set(_synthetic_cases(result.key)) == {str(p) for p in files[4:]}
    assert "4 flagged synthetic image(s) left out" in dialog.audit.toPlainText()
    dialog.reject()
    assert getattr(preferences, "exclude_flagged", None) == str(audit / "audit.csv")

    (audit / "audit.csv").write_text("rank\n")  # edited: refused, naming the file
    dialog = StudyBuilderDialog(preferences)
    qtbot.addWidget(dialog)
    assert dialog.exclude_flagged.text() == str(audit / "audit.csv")
    dialog.name.setText("again")
    dialog.controls.run_button.click()
    qtbot.waitUntil(lambda: "Not built" in dialog.controls.status.text(), timeout=30_000)
    assert "audit.csv" in dialog.controls.status.text()
    assert not (tmp_path / "out" / "again.cxrstudy").exists()


# -- cxrgan generate --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def generated(phantom_generator, tmp_path_factory):
    """Six images of seed 5 written without an audit, and an audit flagging numbers 1 and 4
    (hashed from the PNGs as Pillow reads them)."""
    from cxrgan_desktop.tasks.generate import generate_to_folder

    root = tmp_path_factory.mktemp("generated")
    generate_to_folder(phantom_generator, root / "all", n=6, seed=5)
    files = sorted((root / "all").glob("img_*.png"))
    hashes = {p.name: pixel_sha256(pil_pixels(p)) for p in files}
    flagged = {files[1].name, files[4].name}
    audit = write_audit(root / "audit", root / "all", hashes, flagged)
    return audit, {hashes[n] for n in flagged}, set(hashes.values())


def _generate(phantom_generator, out: Path, *extra: str) -> int:
    return main(["generate", "--model", str(phantom_generator.path), "--n", "6", "--seed", "5",
                 "--device", "cpu", "--out", str(out), *extra])


@pytest.mark.parametrize("image_format", ["png16", "dicom"])
def test_generate_does_not_write_flagged_images(phantom_generator, generated, tmp_path,
                                                capsys, image_format):
    audit, flagged, every = generated
    out = tmp_path / "out"
    assert _generate(phantom_generator, out, "--format", image_format,
                     "--exclude-flagged", str(audit)) == 0
    assert "left out 2 image(s) flagged" in capsys.readouterr().out
    suffix = ".png" if image_format == "png16" else ".dcm"
    files = sorted(out.glob(f"img_*{suffix}"))
    read = pil_pixels if image_format == "png16" else dicom_pixels
    written = {pixel_sha256(read(p)) for p in files}
    assert [p.stem for p in files] == ["img_00000", "img_00002", "img_00003", "img_00005"]
    assert written == every - flagged
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["images"]) == 4
    section = manifest["exclude_flagged"]
    assert section["excluded"] == 2 and section["excluded_indices"] == [1, 4]
    assert section["replacements"].startswith("none")
    [used] = section["audits"]
    assert used["audit_sha256"] == sha256_of(audit / "audit.csv")
    assert used["audit_csv"] == str((audit / "audit.csv").resolve())
    assert used["excluded_files"] == [f"img_00001{suffix}", f"img_00004{suffix}"]
    assert used["thresholds"] == {"pixels": 0.97, "alpha": 0.001}
    assert used["flagged_images"] == 2 and used["audited_images"] == 6


def test_generate_resumed_with_an_audit_removes_flagged_images_and_keeps_them_out(
        phantom_generator, generated, tmp_path, capsys):
    audit, flagged, every = generated
    out = tmp_path / "out"
    assert _generate(phantom_generator, out) == 0
    assert len(list(out.glob("img_*.png"))) == 6
    assert _generate(phantom_generator, out, "--resume", "--exclude-flagged", str(audit)) == 0
    assert {pixel_sha256(pil_pixels(p)) for p in out.glob("img_*.png")} == every - flagged
    assert _generate(phantom_generator, out, "--resume") == 0  # without the audit: still out
    capsys.readouterr()
    assert {pixel_sha256(pil_pixels(p)) for p in out.glob("img_*.png")} == every - flagged
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["exclude_flagged"]["excluded_indices"] == [1, 4]
    assert [i["index"] for i in manifest["images"]] == [0, 2, 3, 5]


def test_generate_refuses_a_damaged_audit_and_writes_nothing(phantom_generator, generated,
                                                             tmp_path, capsys):
    audit, _, _ = generated
    edited = tmp_path / "edited"
    shutil.copytree(audit, edited)
    table = edited / "audit.csv"
    table.write_text(table.read_text() + "\n", encoding="utf-8")
    assert _generate(phantom_generator, tmp_path / "out", "--exclude-flagged",
                     str(table)) == 2
    assert f"{table}: changed since the audit" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- LCO archives -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lco_files(phantom_generator, phantom_classifier, tmp_path_factory):
    """The phantom generator and classifier as files, for the command line."""
    from cxrgan_desktop.engine.checkpoints import save_generator
    from cxrgan_desktop.engine.classifier.files import save_classifier

    root = tmp_path_factory.mktemp("lco_files")
    _, loaded = phantom_classifier
    g = save_generator(root / "g.safetensors", phantom_generator.generator,
                       phantom_generator.adapter, "phantom-tiny")
    c = save_classifier(root / "c.safetensors", loaded.classifier, "phantom-small")
    return g, c


def _lco(files, out: Path, *extra: str) -> int:
    """An easy target (every sample is accepted at once), five items."""
    g, c = files
    return main(["lco", "--model", str(g), "--classifier", str(c), "--labels", "Cardiomegaly",
                 "--absent", "Pneumothorax", "--present-threshold", "0.000001",
                 "--absent-threshold", "0.999999", "--steps", "5", "--batch-size", "2",
                 "--restarts", "0", "--device", "cpu", "--n", "5", "--seed", "3",
                 "--out", str(out), *extra])


def _archive_state(out: Path) -> dict[str, object]:
    from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv

    return {"images": {p.name: pixel_sha256(pil_pixels(p)) for p in out.glob("lco_*.png")},
            "csv": sorted(e.image_index for e in read_data_entry_csv(
                out / "Data_Entry_lco.csv")),
            "records": {p.name: json.loads(p.read_text())["lco"]
                        for p in out.glob("lco_*.json")}}


def test_an_archive_resumed_with_an_audit_excludes_flagged_images(lco_files, tmp_path,
                                                                 capsys):
    out = tmp_path / "archive"
    assert _lco(lco_files, out) == 0
    before = _archive_state(out)
    assert len(before["images"]) == 5 and len(before["csv"]) == 5
    flagged_names = {"lco_00001.png", "lco_00003.png"}
    audit = write_audit(tmp_path / "audit", out, before["images"], flagged_names)
    capsys.readouterr()

    assert _lco(lco_files, out, "--exclude-flagged", str(audit)) == 0
    printed = capsys.readouterr().out
    assert "excluded by the memorisation audit: 2 accepted image(s) (items 1, 3)" in printed
    assert "replacements: none" in printed and "3 of 5 accepted" in printed
    after = _archive_state(out)
    kept = {n: h for n, h in before["images"].items() if n not in flagged_names}
    assert after["images"] == kept  # the flagged files are gone, the rest untouched
    assert after["csv"] == sorted(kept)
    for name in flagged_names:
        record = after["records"][name.replace(".png", ".json")]
        note = record["excluded_by_audit"]
        assert record["file"] is None and note["file"] == name
        assert note["pixel_sha256"] == before["images"][name]
        assert note["audit_sha256"] == sha256_of(audit / "audit.csv")
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["accepted"], manifest["excluded_by_audit"], manifest["failed"]) == (3, 2, 0)
    assert manifest["complete"]
    section = manifest["exclude_flagged"]
    assert section["excluded"] == 2 and section["excluded_items"] == [1, 3]
    assert section["replacements"].startswith("none")
    [used] = section["audits"]
    assert used["audit_csv"] == str((audit / "audit.csv").resolve())
    assert used["excluded_files"] == sorted(flagged_names) and used["excluded"] == 2
    assert used["thresholds"] == {"pixels": 0.97, "alpha": 0.001}

    # resumed without the audit: they stay out, nothing is replaced
    assert _lco(lco_files, out) == 0
    assert _archive_state(out) == after
    # an unfinished archive (two items lost) resumed with the audit: the flagged one is
    # rendered again, recognised, and written as excluded; the other comes back
    for stem in ("lco_00003", "lco_00004"):
        (out / f"{stem}.json").unlink()
        (out / f"{stem}.png").unlink(missing_ok=True)
    assert _lco(lco_files, out, "--exclude-flagged", str(audit / "audit.csv")) == 0
    again = _archive_state(out)
    assert again["images"] == kept and again["csv"] == sorted(kept)
    assert again["records"]["lco_00003.json"]["excluded_by_audit"]["file"] == "lco_00003.png"
    assert json.loads((out / "manifest.json").read_text())["exclude_flagged"][
        "excluded_items"] == [1, 3]


def test_a_dicom_archive_excludes_flagged_images(phantom_generator, phantom_classifier,
                                                  tmp_path):
    from cxrgan_desktop.engine.lco import LCOSettings, LCOTarget
    from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv
    from cxrgan_desktop.tasks.archive import build_archive, repeated_target
    from cxrgan_desktop.tasks.audit_file import read_flagged

    _, loaded = phantom_classifier
    easy = LCOTarget(present=("Cardiomegaly",), absent=("Pneumothorax",), threshold=1e-6,
                     thresholds=(("Pneumothorax", 1 - 1e-6),))
    settings = LCOSettings(steps=5, restarts=0, batch_size=2)
    plan = repeated_target(easy, 4, seed=6)
    out = tmp_path / "dicom"
    build_archive(phantom_generator, loaded, plan, out, settings=settings,
                  image_format="dicom")
    hashes = {p.name: pixel_sha256(dicom_pixels(p)) for p in sorted(out.glob("*.dcm"))}
    assert len(hashes) == 4
    audit = write_audit(tmp_path / "audit", out, hashes, {"lco_00002.dcm"})
    summary = build_archive(phantom_generator, loaded, plan, out, settings=settings,
                            image_format="dicom", exclude=read_flagged(audit))
    assert (summary.accepted, summary.excluded, summary.done) == (3, 1, 4)
    left = {pixel_sha256(dicom_pixels(p)) for p in out.glob("*.dcm")}
    assert left == set(hashes.values()) - {hashes["lco_00002.dcm"]}
    assert sorted(e.image_index for e in read_data_entry_csv(out / "Data_Entry_lco.csv")) == [
        "lco_00000.dcm", "lco_00001.dcm", "lco_00003.dcm"]


def test_an_archive_refuses_a_damaged_audit_and_changes_nothing(lco_files, tmp_path,
                                                                capsys):
    out = tmp_path / "archive"
    assert _lco(lco_files, out) == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    audit = write_audit(tmp_path / "audit", out,
                        {p.name: pixel_sha256(pil_pixels(p)) for p in out.glob("*.png")},
                        {"lco_00000.png"})
    (audit / "summary.json").unlink()
    capsys.readouterr()
    assert _lco(lco_files, out, "--exclude-flagged", str(audit)) == 2
    assert "summary.json" in capsys.readouterr().err
    write_audit(tmp_path / "audit", out, {"lco_00000.png": "0" * 64}, {"lco_00000.png"})
    table = audit / "audit.csv"
    table.write_text(table.read_text().replace("0" * 64, "1" * 64), encoding="utf-8")
    assert _lco(lco_files, out, "--exclude-flagged", str(table)) == 2
    assert f"{table}: changed since the audit" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files


# -- the window's export ----------------------------------------------------------------------

def _renamed_copies(generated_folder: Path, into: Path) -> list[Path]:
    """The generated PNGs under other names (as the window's session keeps them)."""
    into.mkdir()
    copies = []
    for k, path in enumerate(sorted(generated_folder.glob("img_*.png"))):
        copies.append(into / f"session_{5 - k}.png")
        shutil.copy(path, copies[-1])
    return copies


@pytest.mark.parametrize("image_format", ["png16", "dicom"])
def test_export_items_skips_flagged_images(phantom_generator, generated, tmp_path,
                                           image_format):
    from cxrgan_desktop.imaging.windowing import unit_window
    from cxrgan_desktop.tasks.audit_file import read_flagged
    from cxrgan_desktop.tasks.export import ExportItem, export_items

    audit, flagged, every = generated
    copies = _renamed_copies(audit.parent / "all", tmp_path / "session")
    items = [ExportItem(p, f"seed5_{k:05d}", phantom_generator.name, "0" * 64, 5, k)
             for k, p in enumerate(copies)]
    result = export_items(items, tmp_path / "out", image_format, unit_window(),
                          exclude=read_flagged(audit))
    read = pil_pixels if image_format == "png16" else dicom_pixels
    suffix = ".png" if image_format == "png16" else ".dcm"
    written = {pixel_sha256(read(p)) for p in (tmp_path / "out").glob(f"*{suffix}")}
    assert written == every - flagged and len(result.written) == 4
    assert sorted(result.excluded) == sorted(p for p in copies
                                             if pixel_sha256(pil_pixels(p)) in flagged)
    assert result.audit["excluded"] == 2 and result.audit["audit_sha256"] == sha256_of(
        audit / "audit.csv")
    assert sorted(result.audit["excluded_files"]) == sorted(str(p) for p in result.excluded)
    plain = export_items(items, tmp_path / "plain", image_format, unit_window())
    assert len(plain.written) == 6 and plain.excluded == [] and plain.audit is None


def test_the_export_flow_offers_an_audit_remembers_it_and_says_how_many_were_left_out(
        qtbot, phantom_generator, generated, tmp_path, monkeypatch, dialogs):
    pytest.importorskip("pytestqt")
    from PySide6.QtWidgets import QFileDialog, QInputDialog, QWidget

    from cxrgan_desktop.core.settings import Settings
    from cxrgan_desktop.gui.jobs.slot import JobSlot
    from cxrgan_desktop.gui.panels.generate import GeneratePanel
    from cxrgan_desktop.gui.shell.export_controller import CHOOSE_AUDIT, ExportController
    from cxrgan_desktop.gui.viewer.gallery import Gallery, GalleryEntry
    from cxrgan_desktop.gui.viewer.viewer import ImageViewer
    from cxrgan_desktop.tasks.export import EXPORT_FORMATS

    audit, flagged, every = generated
    copies = _renamed_copies(audit.parent / "all", tmp_path / "session")
    parent = QWidget()
    qtbot.addWidget(parent)
    slot, settings = JobSlot(parent), Settings()
    gallery, viewer, panel = Gallery(parent), ImageViewer(parent), GeneratePanel(parent)
    for k, path in enumerate(copies):
        gallery.add_entry(GalleryEntry(path, f"seed 5 #{k}", {
            "seed": 5, "index": k, "model_name": phantom_generator.name,
            "model_sha256": "0" * 64}), pil_pixels(path))
    gallery.selectAll()
    exporter = ExportController(slot, gallery, viewer, panel, settings, parent)
    statuses = []
    exporter.status.connect(lambda text, _ms: statuses.append(text))
    offered = []
    dicom = EXPORT_FORMATS["dicom"]

    def pick(wanted):
        def get_item(parent, title, label, items, current, editable):
            offered.append((list(items), current))
            return next(i for i in items if wanted(i)), True
        return get_item

    # first export: choose an audit from the list, then the DICOM entry that uses it
    answers = iter([lambda i: i == CHOOSE_AUDIT,
                    lambda i: i.startswith(dicom) and "leaving out" in i])
    monkeypatch.setattr(QInputDialog, "getItem",
                        lambda *a, **k: pick(next(answers))(*a, **k))
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(audit / "audit.csv"), ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda *a, **k: str(tmp_path / "dicom"))
    with qtbot.waitSignal(exporter.finished, timeout=30_000) as finished:
        exporter.export_selected()
    qtbot.waitUntil(lambda: not slot.is_running(), timeout=10_000)
    assert offered[0][0][-1] == CHOOSE_AUDIT and not any("leaving out" in i
                                                         for i in offered[0][0])
    result = finished.args[0]
    assert len(result.excluded) == 2
    written = {pixel_sha256(dicom_pixels(p)) for p in (tmp_path / "dicom").glob("*.dcm")}
    assert written == every - flagged
    assert "left out 2 image(s) flagged" in statuses[-1]
    assert getattr(settings, "last_export_audit", None) == str(audit / "audit.csv")

    # the next export offers the remembered audit, preselected
    offered.clear()
    monkeypatch.setattr(QInputDialog, "getItem", pick(lambda i: "leaving out" in i))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda *a, **k: str(tmp_path / "png"))
    with qtbot.waitSignal(exporter.finished, timeout=30_000):
        exporter.export_selected()
    qtbot.waitUntil(lambda: not slot.is_running(), timeout=10_000)
    items, current = offered[0]
    assert "leaving out" in items[current] and str(audit / "audit.csv") in items[current]
    assert {pixel_sha256(pil_pixels(p)) for p in (tmp_path / "png").glob("*.png")} == (
        every - flagged)

    # an edited audit: refused with its name, nothing exported
    table = audit.parent / "edited" / "audit.csv"
    shutil.copytree(audit, table.parent)
    table.write_text(table.read_text() + "\n")
    settings.last_export_audit = str(table)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda *a, **k: str(tmp_path / "never"))
    exporter.export_selected()
    assert dialogs[-1][0] == "warning" and f"{table}: changed since the audit" in dialogs[-1][2]
    assert not (tmp_path / "never").exists()
