"""FID runs end to end on the random-weights network: folders, generators, statistics files,
the feature cache, settings checks and cancellation."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.metrics.feature_cache import FeatureCache
from cxrgan_desktop.metrics.stats_file import save_stats
from cxrgan_desktop.tasks.fid import FIDMeasurer, FIDOptions, SideSpec, compute_fid, parse_side
from cxrgan_desktop.tasks.fid_sources import ArraySource, GeneratorSource


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    """Two small phantom folders of different content (seeds), 64 px."""
    from cxrgan_desktop.tasks.phantom import write_phantoms

    root = tmp_path_factory.mktemp("fid_sets")
    return (write_phantoms(root / "a", n=6, size=64, seed=1),
            write_phantoms(root / "b", n=5, size=64, seed=2))


def _options(**kwargs) -> FIDOptions:
    return FIDOptions(batch_size=4, kid_subsets=4, **kwargs)


def test_identical_folders_give_zero_and_the_settings_are_recorded(two_sets, fid_inception):
    a, _ = two_sets
    result = compute_fid(SideSpec("folder", str(a)), SideSpec("folder", str(a)), _options(),
                         inception=fid_inception)
    assert abs(result.fid) < 1e-6
    assert result.real.n == result.fake.n == 6
    assert result.fake.from_cache  # the second side was the first side's features
    assert result.settings["resize"] == "antialias"
    assert result.settings["weights_sha256"] == fid_inception.sha256
    assert any("N = 6 < 2048" in w for w in result.warnings)
    assert result.kid is not None and result.kid.subset_size == 6
    record = result.to_record()
    assert record["real"]["n"] == 6 and record["kid"]["subsets"] == 4


def test_different_folders_and_the_feature_cache(two_sets, fid_inception, tmp_path):
    a, b = two_sets
    cache = FeatureCache(tmp_path / "cache")
    first = compute_fid(SideSpec("folder", str(a)), SideSpec("folder", str(b)),
                        _options(cache=cache), inception=fid_inception)
    assert first.fid > 1e-3 and not first.real.from_cache and not first.fake.from_cache
    again = compute_fid(SideSpec("folder", str(a)), SideSpec("folder", str(b)),
                        _options(cache=cache), inception=fid_inception)
    assert again.real.from_cache and again.fake.from_cache
    assert again.fid == pytest.approx(first.fid, rel=1e-12)

    changed = tmp_path / "b"  # a copy of b with one file rewritten: b's entry must not serve
    shutil.copytree(b, changed)
    victim = sorted(changed.glob("*.png"))[0]
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = compute_fid(SideSpec("folder", str(a)), SideSpec("folder", str(changed)),
                        _options(cache=cache), inception=fid_inception)
    assert third.real.from_cache and not third.fake.from_cache
    other_resize = compute_fid(SideSpec("folder", str(a)), SideSpec("folder", str(b)),
                               _options(cache=cache, resize="pytorch-fid"),
                               inception=fid_inception)
    assert not other_resize.real.from_cache and other_resize.fid != first.fid


def test_a_damaged_cache_file_is_a_miss(two_sets, fid_inception, tmp_path):
    a, _ = two_sets
    cache = FeatureCache(tmp_path / "cache")
    measurer = FIDMeasurer(_options(cache=cache), fid_inception)
    first = measurer.side(SideSpec("folder", str(a)))
    for file in cache.folder.iterdir():
        file.write_bytes(b"not a zip")
    second = measurer.side(SideSpec("folder", str(a)))
    assert not second.from_cache
    np.testing.assert_array_equal(first.stats.features, second.stats.features)


def test_generator_side_matches_its_images(phantom_generator, fid_inception):
    from cxrgan_desktop.engine.render import Renderer, latents_for_seed

    measurer = FIDMeasurer(_options(use_cache=False), fid_inception)
    source = GeneratorSource(phantom_generator, n=5, seed=3)
    from_model = measurer.extractor.features(source.batches(2), source.count)
    renderer = Renderer(phantom_generator)
    images = renderer.render(latents_for_seed(3, 5, renderer.latent_size))[:, 0].numpy()
    from_arrays = measurer.extractor.features(ArraySource(list(images)).batches(4), 5)
    np.testing.assert_allclose(from_model, from_arrays, rtol=1e-5, atol=1e-6)


def test_model_side_by_file(phantom_generator, two_sets, fid_inception):
    a, _ = two_sets
    model = SideSpec("model", str(phantom_generator.path), n=4, seed=0)
    result = compute_fid(SideSpec("folder", str(a)), model, _options(use_cache=False),
                         inception=fid_inception)
    assert result.fake.n == 4 and result.fid > 0
    assert "N=4, seed 0" in result.fake.spec.label


def test_statistics_file_sides(two_sets, fid_inception, tmp_path):
    a, b = two_sets
    measurer = FIDMeasurer(_options(), fid_inception)
    side = measurer.side(SideSpec("folder", str(a)))
    plain, full = tmp_path / "a.npz", tmp_path / "a_features.npz"
    save_stats(plain, side.stats)
    save_stats(full, side.stats, with_features=True)
    direct = compute_fid(SideSpec("folder", str(a)), SideSpec("folder", str(b)), _options(),
                         inception=fid_inception)
    from_plain = compute_fid(parse_side(str(plain)), parse_side(str(b)), _options(),
                             inception=fid_inception)
    assert from_plain.fid == pytest.approx(direct.fid, rel=1e-12)
    assert from_plain.kid is None and from_plain.prdc is None
    assert any("KID and precision/recall/density/coverage not computed" in w
               for w in from_plain.warnings)
    from_full = compute_fid(parse_side(str(full)), parse_side(str(b)), _options(),
                            inception=fid_inception)
    assert from_full.kid == direct.kid


def test_statistics_of_other_settings_are_refused(two_sets, fid_inception, tmp_path):
    a, b = two_sets
    side = FIDMeasurer(_options(resize="pytorch-fid"), fid_inception).side(
        SideSpec("folder", str(a)))
    path = tmp_path / "pytorch_fid_resize.npz"
    save_stats(path, side.stats)
    with pytest.raises(ValueError, match="resize = 'pytorch-fid'.*'antialias'"):
        compute_fid(parse_side(str(path)), parse_side(str(b)), _options(),
                    inception=fid_inception)
    unknown = tmp_path / "from_pytorch_fid.npz"
    np.savez(unknown, mu=side.stats.mu, sigma=side.stats.sigma)
    result = compute_fid(parse_side(str(unknown)), parse_side(str(b)),
                         _options(resize="pytorch-fid"), inception=fid_inception)
    assert any("does not record how it was made" in w for w in result.warnings)


def test_unreadable_files_are_left_out_and_reported(two_sets, fid_inception, tmp_path):
    a, _ = two_sets
    folder = tmp_path / "with_bad"
    shutil.copytree(a, folder)
    (folder / "truncated.png").write_bytes((folder / sorted(os.listdir(folder))[0])
                                           .read_bytes()[:200])
    result = compute_fid(SideSpec("folder", str(a)), SideSpec("folder", str(folder)),
                         _options(), inception=fid_inception)
    assert result.fake.n == 6 and len(result.fake.skipped) == 1
    assert any("truncated.png" in w for w in result.warnings)


def test_cancel_stops_and_caches_nothing(two_sets, fid_inception, tmp_path):
    a, b = two_sets
    cache = FeatureCache(tmp_path / "cache")
    cancel = threading.Event()

    def progress(fraction, message=""):
        if "features" in message:
            cancel.set()

    with pytest.raises(Cancelled):
        compute_fid(SideSpec("folder", str(a)), SideSpec("folder", str(b)),
                    _options(cache=cache), progress, cancel, inception=fid_inception)
    assert not cache.folder.exists() or not any(cache.folder.iterdir())


def test_parse_side_explains_what_a_side_is(tmp_path):
    assert parse_side("model:segal2020", 10).kind == "model"
    with pytest.raises(ValueError, match="give the number of samples"):
        parse_side("model:segal2020")
    with pytest.raises(ValueError, match="no such folder"):
        parse_side(str(tmp_path / "missing"))
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="none of them"):
        parse_side(str(tmp_path / "x.txt"))
