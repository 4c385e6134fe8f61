"""Reader studies: building, the leak audit against planted leaks, sessions and scoring."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cxrgan_desktop.study.design import RatingScale, StudySettings
from cxrgan_desktop.study.key import read_key
from cxrgan_desktop.study.leak_audit import audit_package
from cxrgan_desktop.study.package import StudyPackage, npy_bytes
from cxrgan_desktop.study.pipeline import prepare_case
from cxrgan_desktop.study.scoring import score_sessions
from cxrgan_desktop.study.session import SessionError, load_session, open_session
from cxrgan_desktop.tasks.study_build import AuditFailed, StudyPlan, build_study


@pytest.fixture(scope="module")
def sources(phantom_study_sources):
    return phantom_study_sources(30, 96, (1, 2))


@pytest.fixture(scope="module")
def study(sources, tmp_path_factory):
    real, synthetic = sources
    plan = StudyPlan([str(real)], 12, 12, synthetic=[str(synthetic)], seed=5, practice=1,
                     settings=StudySettings(image_size=64))
    return build_study(plan, tmp_path_factory.mktemp("study"), "demo")


MANIFEST_FIELDS = {"format", "format_version", "study_id", "settings", "cases", "practice"}


def _strings(value, where=()):
    """Every key and string value of a JSON tree, with its path: what a reader can read."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield (*where, name), str(name)
            yield from _strings(item, (*where, name))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _strings(item, (*where, position))
    elif isinstance(value, str):
        yield where, value


def assert_blind(manifest: dict, key, settings: StudySettings) -> None:
    """study.json goes to every reader, so it must be the same whatever the answer key says:
    only fields that do not depend on the cases, the scored ids as bare strings in sorted
    order (the ids are random, so sorting them carries nothing; any other order, or any
    per-case field, could follow the truth), practice entries that name no scored case, and
    no scored id, source name or truth word anywhere else."""
    assert set(manifest) == MANIFEST_FIELDS, sorted(manifest)
    assert manifest["cases"] == sorted(key.cases)  # bare strings, in an order set by ids alone
    assert set(manifest["settings"]) == set(StudySettings.__dataclass_fields__)
    assert StudySettings.from_dict(manifest["settings"]) == settings
    for entry in manifest["practice"]:
        assert set(entry) == {"id", "truth"} and entry["id"] not in key.cases, entry
    sources = {s for case in key.cases.values()
               for s in (case.source, Path(case.source).name, Path(case.source).stem)}
    for where, text in _strings(manifest):
        if where[0] == "cases":
            continue  # the one place scored ids belong
        assert not any(case in text for case in key.cases), (where, text)
        assert not any(source in text for source in sources), (where, text)
        if where[0] != "practice":  # a practice case's truth is its feedback
            assert text not in ("real", "synthetic") and "truth" not in text, (where, text)


def test_a_built_study_passes_the_audit_and_hides_the_key(study):
    assert study.audit.passed, study.audit.text()
    package = StudyPackage(study.package)
    assert len(package.case_ids) == 24 and len(package.practice) == 2
    key = read_key(study.key)
    assert set(key.cases) == set(package.case_ids)
    assert key.package_sha256 == package.sha256
    with zipfile.ZipFile(study.package) as archive:
        manifest = json.loads(archive.read("study.json"))
        names = " ".join(archive.namelist())
    assert "synthetic" not in names and "real" not in names
    assert_blind(manifest, key, StudySettings(image_size=64))
    image = package.case_image(package.case_ids[0])
    assert image.shape == (64, 64) and image.min() >= 0 and image.max() == 1.0


def _leak_truth_per_case(manifest, key):
    manifest["cases"] = [{"id": c, "truth": key.truth(c)} for c in manifest["cases"]]


def _leak_order(manifest, key):
    by_truth = sorted(manifest["cases"], key=key.truth)  # real ones first
    if by_truth == manifest["cases"]:  # the random ids happened to sort that way already
        by_truth = sorted(manifest["cases"], key=key.truth, reverse=True)
    manifest["cases"] = by_truth


def _leak_field(manifest, key):
    manifest["synthetic_count"] = sum(c.truth == "synthetic" for c in key.cases.values())


def _leak_source(manifest, key):
    case = next(iter(key.cases.values()))
    manifest["settings"]["title"] = f"Study of {Path(case.source).name}"


def _leak_id_in_practice(manifest, key):
    manifest["practice"][0]["id"] = manifest["cases"][0]


def _leak_id_with_truth(manifest, key):
    first = manifest["cases"][0]
    manifest["settings"]["instructions"] += f" (example: {first} is {key.truth(first)})"


@pytest.mark.parametrize("plant", [_leak_truth_per_case, _leak_order, _leak_field,
                                   _leak_source, _leak_id_in_practice, _leak_id_with_truth])
def test_the_blinding_check_fails_on_a_planted_leak(study, plant):
    """The check above passes on a real build; each planted leak must make it fail."""
    key = read_key(study.key)
    with zipfile.ZipFile(study.package) as archive:
        manifest = json.loads(archive.read("study.json"))
    assert_blind(json.loads(json.dumps(manifest)), key, StudySettings(image_size=64))
    plant(manifest, key)
    with pytest.raises(AssertionError):
        assert_blind(manifest, key, StudySettings(image_size=64))


def test_the_pipeline_brings_both_classes_to_one_form():
    rng = np.random.default_rng(0)
    eight_bit = np.round(rng.uniform(0, 1, (80, 100)) * 255) / 255  # stored, non-square
    continuous = rng.uniform(0, 1, (128, 128))  # a generator's float output
    a, b = prepare_case(eight_bit, 64, 8), prepare_case(continuous, 64, 8)
    assert a.shape == b.shape == (64, 64) and a.dtype == b.dtype == np.uint16
    assert a.max() == b.max() == 255 and a.min() == b.min() == 0


# -- the audit catches a planted leak of each kind ------------------------------------------

def _rewrite(study, out: Path, change) -> Path:
    """Copy the package entry by entry, letting ``change(info, data, truth)`` alter each case
    entry: returns (info, data) to write, or None to keep it."""
    key = read_key(study.key)
    with zipfile.ZipFile(study.package) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.startswith("cases/"):
                changed = change(info, data, key.truth(Path(info.filename).stem))
                if changed is not None:
                    info, data = changed
            target.writestr(info, data)
    return out


def _failed(study, package: Path, key=None) -> set[str]:
    return {c.name for c in audit_package(package, key or read_key(study.key)).failures()}


def test_audit_catches_names(study, tmp_path):
    def prefixed(info, data, truth):
        new = zipfile.ZipInfo(f"cases/{truth[0]}{Path(info.filename).stem[1:]}.npy",
                              info.date_time)
        return new, data

    key = read_key(study.key)
    key.cases = {f"{c.truth[0]}{cid[1:]}": c for cid, c in key.cases.items()}
    package = _rewrite(study, tmp_path / "names.cxrstudy", prefixed)
    assert "case name characters" in _failed(study, package, key)


def test_audit_catches_source_names(study, tmp_path):
    key = read_key(study.key)
    first = next(iter(key.cases))
    key.cases[first].source = f"/data/{first}.png"  # an entry name that repeats a file name
    assert "source names" in _failed(study, study.package, key)


def test_audit_catches_sizes_and_compression(study, tmp_path):
    def deflated(info, data, truth):
        if truth == "real":
            info.compress_type = zipfile.ZIP_DEFLATED
        return info, data

    failed = _failed(study, _rewrite(study, tmp_path / "deflate.cxrstudy", deflated))
    assert "compressed sizes" in failed


def test_audit_catches_dimensions_and_headers(study, tmp_path):
    def bigger(info, data, truth):
        if truth == "synthetic":
            levels = np.load(io.BytesIO(data))
            return info, npy_bytes(np.pad(levels, ((0, 1), (0, 1))))
        return None

    failed = _failed(study, _rewrite(study, tmp_path / "dims.cxrstudy", bigger))
    assert {"dimensions", "file sizes", "file headers"} <= failed


def test_audit_catches_metadata_and_timestamps(study, tmp_path):
    def stamped(info, data, truth):
        if truth == "synthetic":
            info.date_time = (2026, 11, 22, 10, 0, 0)
            info.external_attr = 0o600 << 16
        return info, data

    failed = _failed(study, _rewrite(study, tmp_path / "meta.cxrstudy", stamped))
    assert {"timestamps", "archive metadata", "build time"} <= failed


def test_audit_catches_order(study, tmp_path):
    key = read_key(study.key)
    with zipfile.ZipFile(study.package) as source:
        manifest = json.loads(source.read("study.json"))
        ordered = sorted(manifest["cases"], key=lambda c: key.truth(c))  # real first
        manifest["cases"] = ordered
        out = tmp_path / "order.cxrstudy"
        with zipfile.ZipFile(out, "w") as target:
            target.writestr(source.getinfo("study.json"), json.dumps(manifest))
            for case in ordered:
                target.writestr(source.getinfo(f"cases/{case}.npy"),
                                source.read(f"cases/{case}.npy"))
    assert "order" in _failed(study, out)


def test_audit_catches_bit_depth(study, tmp_path):
    rng = np.random.default_rng(1)

    def finer(info, data, truth):  # synthetic cases keep 16-bit detail, real ones 8-bit
        levels = np.load(io.BytesIO(data)).astype(np.float64)
        if truth == "synthetic":
            levels = np.clip(levels * 257 + rng.integers(0, 257, levels.shape), 0, 65535)
        return info, npy_bytes(levels.astype(np.uint16))

    failed = _failed(study, _rewrite(study, tmp_path / "bits.cxrstudy", finer))
    assert "pixels: grey levels used" in failed


def test_audit_catches_extra_entries(study, tmp_path):
    out = tmp_path / "extra.cxrstudy"
    with zipfile.ZipFile(study.package) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("sources.txt", "nothing")
    assert "extra entries" in _failed(study, out)


# -- sessions --------------------------------------------------------------------------------

def test_a_session_killed_midway_resumes_with_nothing_lost(study, tmp_path):
    package = StudyPackage(study.package)
    session = open_session(package, "Dr A", tmp_path)
    assert sorted(session.order) == sorted(package.case_ids)
    for position in range(5):
        session.record(session.order[position], 1 + position % 6, 2.5)
    del session  # the process dies here: nothing but the file survives
    resumed = open_session(StudyPackage(study.package), "Dr A", tmp_path)
    assert [a.case for a in resumed.answers] == resumed.order[:5]
    assert resumed.next_position() == 5
    with pytest.raises(SessionError, match="does not allow"):
        resumed.record(resumed.order[0], 6, 1.0)
    resumed.record(resumed.order[0], 6, 1.0, allow_back=True)
    assert load_session(resumed.path).answers[0].rating == 6
    other = open_session(package, "Dr B", tmp_path)
    assert other.order != resumed.order and other.order_seed != resumed.order_seed


def test_scoring_joins_sessions_with_the_key(study, tmp_path):
    package = StudyPackage(study.package)
    key = read_key(study.key)
    sessions = []
    for reader in ("r1", "r2"):
        session = open_session(package, reader, tmp_path)
        for case in session.order:
            session.record(case, 6 if key.truth(case) == "synthetic" else 2, 1.0)
        sessions.append(session)
    scored = score_sessions(key, sessions)
    assert len(scored.rows) == 48 and not scored.warnings
    assert all(row.correct for row in scored.rows)
    key.study_id = "another"
    with pytest.raises(SessionError, match="another study"):
        score_sessions(key, sessions)


def test_scale_maps_halves():
    scale = RatingScale()
    assert [scale.answer(r) for r in range(1, 7)] == ["real"] * 3 + ["synthetic"] * 3
    with pytest.raises(ValueError, match="even"):
        RatingScale(("a", "b", "c"))


def test_content_statistics_are_notes_not_failures(study, tmp_path):
    def flat_border(info, data, truth):  # real cases get a flat black border
        if truth == "real":
            levels = np.load(io.BytesIO(data)).copy()
            levels[:, :12] = 0
            return info, npy_bytes(levels)
        return None

    report = audit_package(_rewrite(study, tmp_path / "border.cxrstudy", flat_border),
                           read_key(study.key))
    assert "pixels: fraction at minimum" in {c.name for c in report.failures()}
    assert report.passed and "NOTE  pixels: fraction at minimum" in report.text()


def test_synthetic_cases_drawn_from_a_model(phantom_study_sources, phantom_generator,
                                            tmp_path):
    real, _ = phantom_study_sources(8, 32, (1, 2))  # the model's own resolution: 32 px
    plan = StudyPlan([str(real)], 3, 4, model=str(phantom_generator.path), seed=2,
                     settings=StudySettings(image_size=64))
    result = build_study(plan, tmp_path, "model")
    key = read_key(result.key)
    drawn = sorted(c.source for c in key.cases.values() if c.truth == "synthetic")
    assert drawn == [f"model:{phantom_generator.name}#seed2/{i}" for i in range(4)]
    assert result.audit.passed, result.audit.text()


def test_an_image_cannot_be_both_real_and_synthetic(sources, tmp_path):
    import shutil

    real, synthetic = sources
    same_folder = StudyPlan([str(real)], 4, 4, synthetic=[str(real)],
                            settings=StudySettings(image_size=64))
    with pytest.raises(ValueError, match="both the real and the synthetic"):
        build_study(same_folder, tmp_path / "a")
    mixed = tmp_path / "mixed"  # other images plus one copy of a real one, renamed
    shutil.copytree(synthetic, mixed)
    copied = sorted(Path(real).glob("*.png"))[3]
    shutil.copy(copied, mixed / "renamed.png")
    plan = StudyPlan([str(real)], 4, 4, synthetic=[str(mixed)],
                     settings=StudySettings(image_size=64))
    with pytest.raises(ValueError, match=r"1 image\(s\).*renamed.png"):
        build_study(plan, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_each_reader_name_has_its_own_session(study, tmp_path):
    package = StudyPackage(study.package)
    first = open_session(package, "Dr Test", tmp_path)
    first.record(first.order[0], 2, 1.0)
    assert open_session(package, "  dr   TEST ", tmp_path).answers  # the same reader
    for other in ("Dr_Test", "Dr/Test", "Dr Tester"):
        session = open_session(package, other, tmp_path)
        assert session.path != first.path and not session.answers, other
    assert len({p.name.lower() for p in first.path.parent.iterdir()}) == 4
    with pytest.raises(SessionError, match="empty"):
        open_session(package, "   ", tmp_path)
    planted = first.path.parent / "planted.json"  # a file under a reader's name, not theirs
    planted.write_text(first.path.read_text())
    planted.replace(open_session(package, "Dr X", tmp_path).path)
    with pytest.raises(SessionError, match="session of 'Dr Test'"):
        open_session(package, "Dr X", tmp_path)


def test_sources_of_other_resolutions_fail_the_audit(phantom_study_sources, tmp_path):
    """The issue's case: small synthetic images upscaled beside larger real ones."""
    large, _ = phantom_study_sources(10, 96, (1, 2))
    _, small = phantom_study_sources(10, 24, (3, 4))
    plan = StudyPlan([str(large)], 8, 8, synthetic=[str(small)],
                     settings=StudySettings(image_size=64))
    with pytest.raises(AuditFailed, match="native resolution: .*real 96 px, synthetic 24 px"):
        build_study(plan, tmp_path / "mixed")
    same, other = phantom_study_sources(10, 64, (5, 6))
    built = build_study(StudyPlan([str(same)], 8, 8, synthetic=[str(other)],
                                  settings=StudySettings(image_size=64)), tmp_path / "same")
    checks = {c.name: c for c in built.audit.checks}
    assert checks["native resolution"].passed and "pixels: fine detail" in checks


def test_fine_detail_is_the_laplacian_energy_over_the_variance():
    from PIL import Image
    from scipy.ndimage import laplace

    from cxrgan_desktop.study.leak_audit import fine_detail

    rng = np.random.default_rng(3)
    sharp = rng.integers(0, 256, (64, 64)).astype(np.uint16)
    x = sharp.astype(np.float64)
    expected = np.mean(laplace(x)[1:-1, 1:-1] ** 2) / x.var()
    assert fine_detail(sharp) == pytest.approx(expected)
    small = Image.fromarray(sharp[::4, ::4].astype(np.float32), mode="F")
    blurred = np.asarray(small.resize((64, 64), Image.Resampling.BICUBIC)).clip(0, 255)
    assert fine_detail(blurred.round().astype(np.uint16)) < fine_detail(sharp) / 5
