"""FID that needs no network when it needs none, and a user's own weights file.

Two statistics files hold everything FID is made of (mean and covariance): comparing them
must never load or download the Inception network (issue 22). A weights file that is not the
published one is refused unless the user allows it, and then the result says so."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg

from cxrgan_desktop.cli import main
from cxrgan_desktop.metrics import inception_weights
from cxrgan_desktop.metrics.stats_file import FeatureStats, save_stats

# a small feature size keeps the reference sqrtm cheap; the file records it, as a file made
# with another feature network does
SETTINGS = {"network": "pt_inception-2015-12-05-6726825d.pth", "weights_sha256": "6726825d" * 8,
            "resize": "antialias", "input_size": 299, "resize_method": "bicubic",
            "device": "cpu", "feature_dim": 6}


def _stats(seed: int, shift: float, n: int = 50, dim: int = 6) -> tuple[FeatureStats, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(shift, 1.0 + shift / 4, size=(n, dim))
    mu = features.mean(axis=0)
    sigma = np.cov(features, rowvar=False)
    return FeatureStats(mu, sigma, n, dict(SETTINGS)), features


def _reference_fid(a: FeatureStats, b: FeatureStats) -> float:
    """The definition: |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    root = scipy.linalg.sqrtm(a.sigma @ b.sigma).real
    return float(np.sum((a.mu - b.mu) ** 2) + np.trace(a.sigma + b.sigma - 2 * root))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to load or fetch the Inception network fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the Inception network was asked for")

    monkeypatch.setattr(inception_weights, "load_inception", refuse)
    monkeypatch.setattr(inception_weights, "download_weights", refuse)
    monkeypatch.setattr(inception_weights, "read_weights_state", refuse)


def test_two_statistics_files_give_fid_offline_without_weights(tmp_path, capsys, no_network):
    assert inception_weights.find_weights() is None  # no weights on this (test) machine
    real, _ = _stats(0, 0.0)
    fake, _ = _stats(1, 0.7)
    save_stats(tmp_path / "real.npz", real)
    save_stats(tmp_path / "fake.npz", fake)
    out = tmp_path / "result.json"
    code = main(["fid", str(tmp_path / "real.npz"), str(tmp_path / "fake.npz"), "--offline",
                 "--no-history", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    record = json.loads(out.read_text())
    assert record["fid"] == pytest.approx(_reference_fid(real, fake), rel=1e-6)
    assert f"FID   {record['fid']:.4f}" in printed
    assert record["real"]["n"] == 50 and record["fake"]["n"] == 50
    assert record["settings"]["computed_from"] == "two statistics files; no network loaded"
    assert any("N = 50 < 2048" in w for w in record["warnings"])
    assert record["kid"] is None  # no features kept: KID cannot be computed, and it says so


def test_pytorch_fid_files_without_records_are_compared_with_a_warning(tmp_path, capsys,
                                                                        no_network):
    """pytorch-fid's files hold 2048-d Inception statistics and nothing else; diagonal
    covariances keep the reference analytic: tr(Sa + Sb - 2 sqrt(Sa Sb)) = sum(a + b - 2
    sqrt(a b))."""
    rng = np.random.default_rng(2)
    mu_a, mu_b = rng.normal(size=2048), rng.normal(size=2048)
    var_a, var_b = rng.uniform(0.5, 2, 2048), rng.uniform(0.5, 2, 2048)
    np.savez(tmp_path / "a.npz", mu=mu_a, sigma=np.diag(var_a))  # pytorch-fid's layout
    np.savez(tmp_path / "b.npz", mu=mu_b, sigma=np.diag(var_b))
    assert main(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--no-history"]) == 0
    printed = capsys.readouterr().out
    expected = float(np.sum((mu_a - mu_b) ** 2) + np.sum(var_a + var_b
                                                          - 2 * np.sqrt(var_a * var_b)))
    assert f"FID   {expected:.4f}" in printed
    assert "N=?" in printed and "does not record how it was made" in printed


def test_statistics_made_with_different_settings_are_refused(tmp_path, capsys, no_network):
    real, _ = _stats(4, 0.0)
    fake, _ = _stats(5, 0.0)
    fake.settings["resize"] = "pytorch-fid"
    other, _ = _stats(6, 0.0, dim=5)
    other.settings["feature_dim"] = 5
    save_stats(tmp_path / "other.npz", other)
    save_stats(tmp_path / "real.npz", real)
    save_stats(tmp_path / "fake.npz", fake)
    assert main(["fid", str(tmp_path / "real.npz"), str(tmp_path / "fake.npz"),
                 "--no-history"]) == 2
    err = capsys.readouterr().err
    assert "resize = 'pytorch-fid'" in err and "'antialias'" in err
    assert main(["fid", str(tmp_path / "real.npz"), str(tmp_path / "other.npz"),
                 "--no-history"]) == 2
    assert "different feature sizes ({'real': 6, 'synthetic': 5})" in capsys.readouterr().err


def test_kid_from_two_statistics_files_with_features(tmp_path, capsys, no_network):
    real, real_features = _stats(6, 0.0, n=40)
    fake, fake_features = _stats(7, 0.5, n=40)
    real.features, fake.features = real_features.astype(np.float32), fake_features.astype(
        np.float32)
    save_stats(tmp_path / "real.npz", real, with_features=True)
    save_stats(tmp_path / "fake.npz", fake, with_features=True)
    out = tmp_path / "r.json"
    assert main(["fid", str(tmp_path / "real.npz"), str(tmp_path / "fake.npz"), "--no-history",
                 "--kid-subset-size", "20", "--kid-subsets", "5", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "KID   " in printed and "precision " in printed and "(k = 5, 6-d features" in printed
    prdc = json.loads(out.read_text())["prdc"]
    expected = _brute_prdc(real.features.astype(np.float64), fake.features.astype(np.float64), 5)
    for name, value in expected.items():
        assert prdc[name] == pytest.approx(value, abs=1e-9), name
    assert (prdc["n_real"], prdc["n_fake"], prdc["feature_dim"]) == (40, 40, 6)


def _brute_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """The definitions with scipy's cdist: k-NN radii within each set (the point itself
    excluded), a point on a ball's boundary inside."""
    from scipy.spatial.distance import cdist

    real_radii = np.sort(cdist(real, real), axis=1)[:, k]
    fake_radii = np.sort(cdist(fake, fake), axis=1)[:, k]
    cross = cdist(real, fake)  # [real, fake]
    inside_real_balls = cross <= real_radii[:, None]
    return {"precision": float(inside_real_balls.any(axis=0).mean()),
            "recall": float((cross <= fake_radii[None, :]).any(axis=1).mean()),
            "density": float(inside_real_balls.sum() / (k * fake.shape[0])),
            "coverage": float(inside_real_balls.any(axis=1).mean())}


def test_a_weights_file_with_another_hash_needs_the_users_consent(tmp_path, capsys,
                                                                  fid_weights_file):
    """The random test weights are not the published file: refused by default, used with
    --allow-unverified-weights, and the result records the file and the missing check."""
    path, _ = fid_weights_file
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(images / f"{i}.png")
    base = ["fid", str(images), str(images), "--inception-weights", str(path), "--no-history",
            "--no-cache", "--kid-subset-size", "2", "--kid-subsets", "2"]
    assert main(base) == 2
    assert "is not the published" in capsys.readouterr().err
    out = tmp_path / "r.json"
    assert main([*base, "--allow-unverified-weights", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["settings"]["weights_file"] == str(path)
    assert record["settings"]["weights_verified"] is False
    assert any("not the published file" in w for w in record["warnings"])


def test_relative_fd_against_a_second_reference(tmp_path, capsys, no_network):
    """FD(real, synthetic) / FD(real, real B) (Woodland et al. 2024), each FD from the
    definition; a shifted synthetic set is far further than a second real sample."""
    sets = {}
    for name, seed, shift in (("real", 20, 0.0), ("real_b", 21, 0.0), ("fake", 22, 1.0)):
        stats, features = _stats(seed, shift, n=60)
        stats.features = features.astype(np.float32)
        save_stats(tmp_path / f"{name}.npz", stats, with_features=True)
        sets[name] = features.astype(np.float32).astype(np.float64)
    out = tmp_path / "r.json"
    assert main(["fid", str(tmp_path / "real.npz"), str(tmp_path / "fake.npz"), "--relative",
                 str(tmp_path / "real_b.npz"), "--relative-boot", "30", "--no-history",
                 "--kid-subset-size", "20", "--kid-subsets", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    relative = json.loads(out.read_text())["relative"]

    def fd(a, b):
        mu_a, mu_b = a.mean(0), b.mean(0)
        s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        return float(np.sum((mu_a - mu_b) ** 2)
                     + np.trace(s_a + s_b - 2 * scipy.linalg.sqrtm(s_a @ s_b).real))

    model, real = fd(sets["real"], sets["fake"]), fd(sets["real"], sets["real_b"])
    assert relative["fd_model"] == pytest.approx(model, rel=1e-6)
    assert relative["fd_real"] == pytest.approx(real, rel=1e-6)
    assert relative["ratio"] == pytest.approx(model / real, rel=1e-6)
    assert relative["ratio"] > 5 and relative["ratio_low"] > 1
    assert relative["n_boot"] == 30 and relative["real_b"]["n"] == 60
    assert f"relative FD {relative['ratio']:.3f}" in printed


def test_relative_fd_needs_features(tmp_path, capsys, no_network):
    real, _ = _stats(30, 0.0)
    fake, _ = _stats(31, 0.5)
    for name, stats in (("real", real), ("fake", fake), ("b", real)):
        save_stats(tmp_path / f"{name}.npz", stats)
    assert main(["fid", str(tmp_path / "real.npz"), str(tmp_path / "fake.npz"), "--relative",
                 str(tmp_path / "b.npz"), "--no-history"]) == 2
    assert "relative FD needs the features" in capsys.readouterr().err


def test_classifier_features_need_no_inception(tmp_path, capsys, no_network):
    """--features classifier:NAME: FD, KID and precision/recall in the bundled demo
    classifier's features, offline; the statistics file records the network. Reference: the
    classifier's penultimate features of the PNGs read with Pillow, and FD from the
    definition."""
    from cxrgan_desktop.metrics.stats_file import load_stats
    from cxrgan_desktop.tasks.phantom import write_phantoms

    real = write_phantoms(tmp_path / "real", n=16, size=64, seed=1)
    fake = write_phantoms(tmp_path / "fake", n=16, size=64, seed=2)
    name = "demo-phantom-64-classifier"
    out, stats = tmp_path / "r.json", tmp_path / "real.npz"
    assert main(["fid", str(real), str(fake), "--features", f"classifier:{name}",
                 "--no-history", "--no-cache", "--kid-subset-size", "8", "--kid-subsets", "3",
                 "--json", str(out), "--save-stats", str(stats)]) == 0
    record = json.loads(out.read_text())

    a, b = _classifier_features(real, name), _classifier_features(fake, name)
    expected = _fd(a, b)
    assert record["fid"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert record["settings"]["network"] == f"classifier:{name}"
    assert record["settings"]["feature_dim"] == a.shape[1]
    assert record["prdc"]["feature_dim"] == a.shape[1] and record["kid"] is not None
    saved = load_stats(stats)
    assert saved.settings["network"] == f"classifier:{name}" and saved.mu.shape == (a.shape[1],)
    assert "not comparable with any Inception FID" in record["settings"]["distance"]
    assert "classifier:" in capsys.readouterr().out


DEMO_CLASSIFIER = "demo-phantom-64-classifier"


def _classifier_features(folder, name: str = DEMO_CLASSIFIER) -> np.ndarray:
    """The classifier's penultimate features of a folder's PNGs read with Pillow, by name."""
    import torch
    from PIL import Image

    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.classifier.installed import resolve_classifier

    classifier = load_classifier(resolve_classifier(name)).classifier
    images = [np.asarray(Image.open(p), np.float64) / 65535.0
              for p in sorted(folder.glob("*.png"))]
    with torch.inference_mode():
        return classifier.features(torch.from_numpy(np.stack(images)).float()[:, None]
                                   ).double().numpy()


def _fd(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance from its definition, with scipy's sqrtm."""
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2)
                 + np.trace(s_a + s_b - 2 * scipy.linalg.sqrtm(s_a @ s_b).real))


def test_relative_fd_between_patient_halves_of_one_reference(tmp_path, capsys, no_network):
    """--relative-split: the reference folder (ChestX-ray14 names, 3 images per patient) is
    split into halves with no patient in both; FD(A, synthetic) / FD(A, B) from the
    definition on the classifier's features of exactly those files."""
    from cxrgan_desktop.tasks.phantom import write_phantoms

    source = write_phantoms(tmp_path / "source", n=36, size=64, seed=3)
    real = tmp_path / "real"
    real.mkdir()
    for k, path in enumerate(sorted(source.glob("*.png"))):
        path.rename(real / f"{k // 3 + 1:08d}_{k % 3:03d}.png")
    fake = write_phantoms(tmp_path / "fake", n=20, size=64, seed=4)
    out = tmp_path / "r.json"
    assert main(["fid", str(real), str(fake), "--features", f"classifier:{DEMO_CLASSIFIER}",
                 "--relative-split", "--relative-boot", "20", "--no-history",
                 "--kid-subset-size", "8", "--kid-subsets", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    relative = json.loads(out.read_text())["relative"]
    assert relative["split"] == "patient-wise halves of the reference"
    assert relative["n_real_a"] + relative["n_real_b"] == 36
    assert relative["n_real_a"] % 3 == 0 and relative["n_real_b"] % 3 == 0  # whole patients
    assert abs(relative["n_real_a"] - relative["n_real_b"]) <= 3
    files = sorted(real.glob("*.png"))
    features = _classifier_features(real)
    fake_features = _classifier_features(fake)
    # the halves drawn for seed 0 (patient_halves has its own tests: tests/test_relative_fd.py)
    from cxrgan_desktop.metrics.relative_fd import patient_halves

    patients = [f.name[:8] for f in files]
    half_a, half_b = patient_halves(patients, seed=0)
    assert not {patients[i] for i in half_a} & {patients[i] for i in half_b}
    assert relative["fd_real"] == pytest.approx(_fd(features[half_a], features[half_b]),
                                                rel=1e-4)
    assert relative["fd_model"] == pytest.approx(_fd(features[half_a], fake_features),
                                                 rel=1e-4)
    assert "patient-wise halves of the reference" in printed
