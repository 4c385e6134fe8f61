"""The ChestX-ray14 label file: the real file, both layouts, errors, and the writer."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from cxrgan_desktop.labels.chestxray14 import (
    FINDINGS,
    DataEntry,
    format_findings,
    read_data_entry_csv,
    write_data_entry_csv,
)

REAL_CSV = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
            / "Data_Entry_2017_v2020.csv.gz")

HEADER_2020 = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
               "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
ROWS = [
    "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143",
    "00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.143,0.143",
    "00000002_000.png,No Finding,0,2,81,F,AP,2500,2048,0.171,0.171",
]


@pytest.fixture(scope="module")
def real_entries() -> list[DataEntry]:
    if not REAL_CSV.exists():
        pytest.skip(f"real ChestX-ray14 label file not found at {REAL_CSV} (../shared/data)")
    return read_data_entry_csv(REAL_CSV)


def test_real_file_counts_and_prevalences(real_entries: list[DataEntry]) -> None:
    assert len(real_entries) == 112_120
    counts = Counter(f for e in real_entries for f in e.findings)
    assert counts.most_common(1)[0][0] == "Infiltration"
    assert counts["Infiltration"] == 19_894
    assert counts["Hernia"] == 227  # the rarest
    assert set(counts) == set(FINDINGS)
    no_finding = sum(1 for e in real_entries if not e.findings) / len(real_entries)
    assert no_finding == pytest.approx(0.538, abs=0.001)
    views = Counter(e.view_position for e in real_entries)
    assert set(views) == {"PA", "AP"}
    first = real_entries[0]
    assert first.image_index == "00000001_000.png"
    assert first.findings == frozenset({"Cardiomegaly"})
    assert (first.patient_id, first.gender, first.width, first.height) == (1, "M", 2682, 2749)
    assert first.pixel_spacing_x == pytest.approx(0.143)


def _write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["v2020.csv", "v2020.csv.gz", "orig2017.csv", "orig2017.csv.gz"])
def test_both_layouts_plain_and_gz(tmp_path: Path, name: str) -> None:
    trailing = "," if name.startswith("orig2017") else ""
    text = "\n".join([HEADER_2020 + trailing] + [r + trailing for r in ROWS]) + "\n"
    entries = read_data_entry_csv(_write(tmp_path / name, text))
    assert [e.image_index for e in entries] == ["00000001_000.png", "00000001_001.png",
                                                "00000002_000.png"]
    assert entries[1].findings == frozenset({"Cardiomegaly", "Emphysema"})
    assert entries[2].findings == frozenset()
    assert entries[2].gender == "F" and entries[2].view_position == "AP"
    assert entries[2].pixel_spacing_y == pytest.approx(0.171)


def test_age_with_year_suffix(tmp_path: Path) -> None:
    text = HEADER_2020 + "\n" + ROWS[0].replace(",58,", ",058Y,") + "\n"
    assert read_data_entry_csv(_write(tmp_path / "a.csv", text))[0].age == 58


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("00000003_000.png,Effusion,0,3,abc,M,PA,2500,2048,0.1,0.1", "line 3"),
        ("00000003_000.png,Effusion,0,3,40,M,PA,2500,2048", "expected 11 fields"),
        ("00000003_000.png,Effusionn,0,3,40,M,PA,2500,2048,0.1,0.1", "Effusionn"),
        ("00000003_000.png,Effusion,0,3,40,X,PA,2500,2048,0.1,0.1", "Gender"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, bad_row: str, message: str) -> None:
    path = _write(tmp_path / "bad.csv", "\n".join([HEADER_2020, ROWS[0], bad_row]) + "\n")
    with pytest.raises(ValueError, match=message) as info:
        read_data_entry_csv(path)
    assert "bad.csv" in str(info.value) and "line 3" in str(info.value)


def test_missing_columns_and_empty_file(tmp_path: Path) -> None:
    header = HEADER_2020.replace("Patient Gender,", "")
    path = _write(tmp_path / "cols.csv", header + "\n")
    with pytest.raises(ValueError, match=r"cols\.csv: line 1.*Patient Gender"):
        read_data_entry_csv(path)
    with pytest.raises(ValueError, match="empty"):
        read_data_entry_csv(_write(tmp_path / "empty.csv", ""))


def test_writer_round_trip_v2020_layout(tmp_path: Path) -> None:
    entries = [
        DataEntry("a.png", frozenset({"Hernia", "Atelectasis"}), 0, 7, 33, "F", "PA", 64, 64,
                  6.25, 6.25),
        DataEntry("b.png", frozenset(), 2, 8, 70, "M", "AP", 1024, 1024, 0.390625, 0.390625),
    ]
    path = tmp_path / "out.csv"
    write_data_entry_csv(path, entries)
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER_2020
    assert lines[1].startswith("a.png,Atelectasis|Hernia,0,7,33,F,PA,64,64,6.25,6.25")
    assert not lines[1].endswith(",")  # v2020: no trailing column
    assert read_data_entry_csv(path) == entries
    assert list(tmp_path.iterdir()) == [path]  # atomic: no temporary file left behind


def test_format_findings_order_and_unknown() -> None:
    assert format_findings({"Nodule", "Atelectasis"}) == "Atelectasis|Nodule"
    assert format_findings(()) == "No Finding"
    with pytest.raises(ValueError, match="Pneumo"):
        format_findings({"Pneumo"})
