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
