"""``cxrgan study build | audit | simulate | score | analyse`` end to end on phantoms."""

from __future__ import annotations

import csv
import json

import pytest

from cxrgan_desktop.cli import main


@pytest.fixture(scope="module")
def sources(phantom_study_sources):
    return phantom_study_sources(20, 64, (1, 2))


def test_build_simulate_score_analyse(sources, tmp_path, capsys):
    real, synthetic = sources
    study = tmp_path / "study"
    assert main(["study", "build", "--real", str(real), "--synthetic", str(synthetic),
                 "--n-real", "15", "--n-synthetic", "15", "--size", "64", "--seed", "2",
                 "--readers", "4", "--out", str(study), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "leak audit passed" in out and "never send" in out
    package, key = study / "study.cxrstudy", study / "study.key.json"
    assert main(["study", "audit", str(package), str(key)]) == 0
    capsys.readouterr()

    sessions = tmp_path / "sessions"
    assert main(["study", "simulate", str(package), str(key), "--readers", "3",
                 "--out", str(sessions)]) == 0
    files = sorted(sessions.rglob("*.session.json"))
    assert len(files) == 3
    results = tmp_path / "results.csv"
    assert main(["study", "score", str(key), *map(str, files), "--out", str(results)]) == 0
    scored_out = capsys.readouterr().out
    assert "90 answers from 3 reader(s)" in scored_out
    assert "planned for 4 readers; 3 session(s) given" in scored_out
    with open(results, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["reader", "case", "truth", "rating", "answer", "seconds"]
    assert len(rows) == 91

    analysis = tmp_path / "analysis"
    assert main(["study", "analyse", str(results), "--out", str(analysis), "--plots"]) == 0
    report = capsys.readouterr().out
    assert "all readers (pooled)" in report and "Fleiss' kappa" in report
    summary = json.loads((analysis / "summary.json").read_text())
    assert summary["pooled"]["n"] == 90 and len(summary["readers"]) == 3
    assert 0 <= summary["pooled"]["accuracy"] <= 1
    assert (analysis / "mrmcaov.csv").is_file() and (analysis / "imrmc_input.imrmc").is_file()
    assert (analysis / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert (analysis / "accuracy.pdf").read_bytes()[:5] == b"%PDF-"


def test_bad_inputs_are_user_errors(sources, tmp_path, capsys):
    real, synthetic = sources
    assert main(["study", "build", "--real", str(real), "--synthetic", str(synthetic),
                 "--n-real", "50", "--n-synthetic", "5", "--size", "64",
                 "--out", str(tmp_path)]) == 2
    assert "only 20 readable images" in capsys.readouterr().err
    bad = tmp_path / "results.csv"
    bad.write_text("reader,case,truth\nr,c,real\n")
    assert main(["study", "analyse", str(bad)]) == 2
    assert "header must be exactly" in capsys.readouterr().err
    assert main(["study", "build", "--real", str(real), "--synthetic", str(synthetic),
                 "--n-real", "5", "--n-synthetic", "5", "--scale", "a,b,c",
                 "--out", str(tmp_path)]) == 2
    assert "even number" in capsys.readouterr().err
