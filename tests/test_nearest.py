"""Exact chunked nearest-neighbour search, checked against scikit-learn's brute-force cosine
search and a float64 numpy definition; chunking, memmaps, ties, cancel and the memory bound."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.metrics.nearest import Neighbours, nearest_neighbours, unit_rows


def random_rows(rows: int, dim: int, seed: int) -> np.ndarray:
    """Correlated rows (a shared component plus noise), so that neighbours are close calls."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(dim)
    return (common + rng.standard_normal((rows, dim))).astype(np.float32)


def cosine64(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The definition in float64: a.b / (|a| |b|), 0 where either norm is 0."""
    q = queries.astype(np.float64)
    r = reference.astype(np.float64)
    qn = np.linalg.norm(q, axis=1)
    rn = np.linalg.norm(r, axis=1)
    dots = q @ r.T
    denominator = np.outer(qn, rn)
    return np.divide(dots, denominator, out=np.zeros_like(dots), where=denominator > 0)


def top_k64(queries: np.ndarray, reference: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and float64 similarities, ordered by (similarity desc, index asc)."""
    sims = cosine64(queries, reference)
    order = np.array([np.lexsort((np.arange(len(row)), -row))[:k] for row in sims])
    return order, np.take_along_axis(sims, order, axis=1)


def assert_same_neighbours(found: np.ndarray, expected: np.ndarray, sims64: np.ndarray,
                           tolerance: float = 1e-6) -> None:
    """Indices equal, except where the two candidates are a near-tie in float64."""
    differing = np.argwhere(found != expected)
    for q, j in differing:
        gap = abs(sims64[q, found[q, j]] - sims64[q, expected[q, j]])
        assert gap < tolerance, (q, j, found[q, j], expected[q, j], gap)
    assert len(differing) <= 0.01 * found.size


def test_matches_sklearn_brute_force_cosine():
    queries, reference = random_rows(60, 24, seed=1), random_rows(500, 24, seed=2)
    found = nearest_neighbours(queries, reference, k=7)
    model = NearestNeighbors(n_neighbors=7, metric="cosine", algorithm="brute").fit(reference)
    distances, indices = model.kneighbors(queries)
    assert isinstance(found, Neighbours)
    assert found.indices.dtype == np.int64 and found.similarities.dtype == np.float32
    assert found.indices.shape == found.similarities.shape == (60, 7)
    assert_same_neighbours(found.indices, indices, cosine64(queries, reference))
    np.testing.assert_allclose(found.similarities, 1.0 - distances, atol=1e-5)


def test_matches_float64_definition_and_is_sorted():
    queries, reference = random_rows(40, 64, seed=3), random_rows(333, 64, seed=4)
    found = nearest_neighbours(queries, reference, k=5)
    indices, sims = top_k64(queries, reference, 5)
    assert_same_neighbours(found.indices, indices, cosine64(queries, reference))
    np.testing.assert_allclose(found.similarities, sims, atol=1e-5)
    assert (np.diff(found.similarities, axis=1) <= 0).all()


def test_chunks_that_do_not_divide_the_sets_give_the_same_result():
    queries, reference = random_rows(50, 16, seed=5), random_rows(101, 16, seed=6)
    whole = nearest_neighbours(queries, reference, k=6, query_chunk=1000,
                               reference_chunk=1000)
    chunked = nearest_neighbours(queries, reference, k=6, query_chunk=7, reference_chunk=13)
    np.testing.assert_array_equal(chunked.indices, whole.indices)
    # BLAS may sum a block of a different shape in a different order: float32 round-off only
    np.testing.assert_allclose(chunked.similarities, whole.similarities, rtol=0, atol=1e-6)


def test_reference_chunk_smaller_than_k():
    queries, reference = random_rows(9, 8, seed=7), random_rows(40, 8, seed=8)
    found = nearest_neighbours(queries, reference, k=10, reference_chunk=3, query_chunk=2)
    indices, sims = top_k64(queries, reference, 10)
    assert_same_neighbours(found.indices, indices, cosine64(queries, reference))
    np.testing.assert_allclose(found.similarities, sims, atol=1e-5)


def test_memmap_reference_gives_the_in_memory_result(tmp_path):
    queries, reference = random_rows(30, 32, seed=9), random_rows(257, 32, seed=10)
    path = tmp_path / "reference.f32"
    writer = np.memmap(path, dtype=np.float32, mode="w+", shape=reference.shape)
    writer[:] = reference
    writer.flush()
    del writer
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=reference.shape)
    from_file = nearest_neighbours(queries, mapped, k=4, reference_chunk=50)
    in_memory = nearest_neighbours(queries, reference, k=4, reference_chunk=50)
    np.testing.assert_array_equal(from_file.indices, in_memory.indices)
    np.testing.assert_array_equal(from_file.similarities, in_memory.similarities)


def test_k_equal_to_n_ranks_every_reference_row():
    queries, reference = random_rows(5, 8, seed=11), random_rows(23, 8, seed=12)
    found = nearest_neighbours(queries, reference, k=23, reference_chunk=6)
    for row in found.indices:
        assert sorted(row) == list(range(23))
    indices, sims = top_k64(queries, reference, 23)
    assert_same_neighbours(found.indices, indices, cosine64(queries, reference))
    np.testing.assert_allclose(found.similarities, sims, atol=1e-5)


def test_k_larger_than_n_is_refused():
    with pytest.raises(ValueError, match="only 4 rows"):
        nearest_neighbours(np.ones((2, 3), np.float32), np.ones((4, 3), np.float32), k=5)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_is_refused(k):
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(np.ones((2, 3), np.float32), np.ones((4, 3), np.float32), k=k)


def test_mismatched_features_and_nan_are_refused():
    with pytest.raises(ValueError, match="features"):
        nearest_neighbours(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32), k=1)
    reference = np.ones((4, 3), np.float32)
    reference[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbours(np.ones((2, 3), np.float32), reference, k=1)


def exact_tie_data() -> tuple[np.ndarray, np.ndarray]:
    """Vectors whose products are exact in float32, so ties are exact whatever the order of
    summation: the query is (1, 1, 1, 1); rows 3, 10 and 17 equal it, row 5 is (2, 2, 2, 2)
    (cosine 1 too), the rest are one-hot (cosine 0.5)."""
    reference = np.zeros((20, 4), np.float32)
    reference[np.arange(20), np.arange(20) % 4] = 1.0
    reference[[3, 10, 17]] = 1.0
    reference[5] = 2.0
    return np.ones((1, 4), np.float32), reference


@pytest.mark.parametrize("reference_chunk", [1, 4, 7, 1000])
def test_ties_go_to_the_lower_index(reference_chunk):
    queries, reference = exact_tie_data()
    found = nearest_neighbours(queries, reference, k=6, reference_chunk=reference_chunk)
    np.testing.assert_array_equal(found.indices[0], [3, 5, 10, 17, 0, 1])
    np.testing.assert_array_equal(found.similarities[0], [1, 1, 1, 1, 0.5, 0.5])


def test_tie_at_the_kth_place_inside_one_block():
    queries, reference = exact_tie_data()
    # 4 rows at cosine 1, then 16 tied at 0.5: k = 5 takes the lowest-numbered of those
    found = nearest_neighbours(queries, reference, k=5)
    np.testing.assert_array_equal(found.indices[0], [3, 5, 10, 17, 0])


def test_zero_rows_score_zero_with_everything():
    queries, reference = exact_tie_data()
    reference[[0, 1]] = 0.0
    queries = np.vstack([-queries, np.zeros((1, 4), np.float32)])
    found = nearest_neighbours(queries, reference, k=20)
    sims = dict(zip(found.indices[0], found.similarities[0], strict=True))
    assert sims[0] == 0.0 and sims[1] == 0.0 and sims[3] == -1.0
    # the zero query: every row at 0, so the order is the index order
    np.testing.assert_array_equal(found.indices[1], np.arange(20))
    np.testing.assert_array_equal(found.similarities[1], np.zeros(20))


def test_cancel_raises_cancelled_before_and_during_the_search():
    queries, reference = random_rows(20, 8, seed=13), random_rows(100, 8, seed=14)
    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        nearest_neighbours(queries, reference, k=3, cancel=event)

    event = threading.Event()
    seen: list[float] = []

    def stop_after_first_block(fraction: float, message: str = "") -> None:
        seen.append(fraction)
        if fraction > 0:
            event.set()

    with pytest.raises(Cancelled):
        nearest_neighbours(queries, reference, k=3, reference_chunk=10, query_chunk=5,
                           progress=stop_after_first_block, cancel=event)
    assert 0 < max(seen) < 1


def test_progress_rises_to_one():
    queries, reference = random_rows(20, 8, seed=15), random_rows(100, 8, seed=16)
    seen: list[float] = []
    nearest_neighbours(queries, reference, k=3, reference_chunk=30, query_chunk=7,
                       progress=lambda fraction, message="": seen.append(fraction))
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in itertools.pairwise(seen))


class RecordingRows:
    """An array-like reference that records every slice asked of it, and refuses anything
    but a contiguous row slice (so a whole read, fancy indexing or np.asarray(all) fails)."""

    def __init__(self, rows: np.ndarray) -> None:
        self._rows = rows
        self.shape = rows.shape
        self.dtype = rows.dtype
        self.requests: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"only row slices are allowed, got {key!r}")
        start, stop, _ = key.indices(len(self._rows))
        self.requests.append((start, stop))
        return self._rows[start:stop].copy()

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole reference was read at once")


def test_reference_is_read_in_bounded_slices_exactly_once():
    queries, reference = random_rows(25, 8, seed=17), random_rows(1000, 8, seed=18)
    recorder = RecordingRows(reference)
    found = nearest_neighbours(queries, recorder, k=4, reference_chunk=64, query_chunk=10)
    assert max(stop - start for start, stop in recorder.requests) <= 64
    covered = np.zeros(1000, int)
    for start, stop in recorder.requests:
        covered[start:stop] += 1
    np.testing.assert_array_equal(covered, np.ones(1000, int))
    expected = nearest_neighbours(queries, reference, k=4, reference_chunk=64, query_chunk=10)
    np.testing.assert_array_equal(found.indices, expected.indices)


def test_no_queries_gives_empty_results():
    found = nearest_neighbours(np.zeros((0, 3), np.float32), np.ones((4, 3), np.float32), k=2)
    assert found.indices.shape == (0, 2) and found.similarities.shape == (0, 2)


def test_unit_rows_against_numpy_norms():
    rows = random_rows(10, 5, seed=19)
    rows[4] = 0.0
    units = unit_rows(rows)
    assert units.dtype == np.float32
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    expected = rows / np.where(norms > 0, norms, 1.0)[:, None]
    np.testing.assert_allclose(units, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(units[4], np.zeros(5))
    np.testing.assert_allclose(np.linalg.norm(np.delete(units, 4, axis=0), axis=1), 1.0,
                               atol=1e-6)
