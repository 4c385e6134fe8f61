"""Exact nearest neighbours by cosine similarity, in bounded memory.

A memorisation audit asks, for every generated image, which training images are most like
it. The training set can be ChestX-ray14-sized (112,120 images) and its feature file larger
than one wants in memory at once, so the search is chunked over both sets: the reference is
read one block of rows at a time, once (it may be a read-only ``np.memmap``), and each block
is compared with the queries one block at a time. Peak memory is about ``query_chunk x
reference_chunk`` float32 similarities plus the ``Q x k`` best-so-far buffers (and a float32
unit-norm copy of the queries), whatever N is.

The search is exact: every query is compared with every reference row (torch matmul in
float32, TF32 off on CUDA), and a running top-k is merged after each block. Approximate
indexes (FAISS IVF, HNSW) would be faster at this scale but can miss the one near-copy an
audit exists to find.

Rows are normalised here, so the score is cosine similarity whatever the caller passes; a row
of zeros (the pixel vector of a constant image) scores 0 against everything. Ties, exact
in float32, go to the lower reference index, so a run is reproducible and duplicated
training images are reported in file order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress

DEFAULT_K = 5
DEFAULT_QUERY_CHUNK = 1024
DEFAULT_REFERENCE_CHUNK = 16384


@dataclass(frozen=True)
class Neighbours:
    """The ``k`` most similar reference rows of each query, most similar first.

    ``indices``: int64 [Q, k], row numbers in the reference; ``similarities``: float32
    [Q, k], cosine similarities in [-1, 1] (0 for a zero row).
    """

    indices: np.ndarray
    similarities: np.ndarray


def unit_rows(x: np.ndarray) -> np.ndarray:
    """float32 copy of ``x`` [N, D] with every row scaled to unit L2 norm; zero rows stay zero.

    The norms are summed in float64 so that rows with large D are not biased by float32
    round-off in the sum.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d array of rows, got shape {x.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    scale = np.zeros_like(norms)
    np.divide(1.0, norms, out=scale, where=norms > 0)
    return (x * scale[:, None]).astype(np.float32, copy=False)


@contextmanager
def _full_float32(device: torch.device) -> Iterator[None]:
    """TF32 off for the duration: its 10-bit mantissa would reorder close neighbours."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def _checked_block(block: Any, what: str) -> np.ndarray:
    rows = np.asarray(block, dtype=np.float32)
    if not np.isfinite(rows).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return unit_rows(rows)


def _block_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best columns of each row of ``scores`` [q, n]; where the k-th value is tied,
    the lowest column numbers win (``torch.topk`` makes no promise about ties)."""
    if k >= scores.shape[1]:
        return torch.topk(scores, k, dim=1)
    # one more than asked for: the set is ambiguous only where the k-th equals the (k+1)-th,
    # which costs nothing next to comparing the whole block with the k-th value
    values, columns = torch.topk(scores, k + 1, dim=1)
    tied_rows = (values[:, k - 1] == values[:, k]).nonzero().flatten()
    values, columns = values[:, :k], columns[:, :k]
    threshold = values[:, -1:]
    if tied_rows.numel():
        sub = scores[tied_rows]
        limit = threshold[tied_rows]
        above = sub > limit
        equal = sub == limit
        wanted = k - above.sum(dim=1, keepdim=True)
        chosen = above | (equal & (torch.cumsum(equal, dim=1) <= wanted))
        picked = chosen.nonzero()[:, 1].view(-1, k)  # row-major: ascending columns
        columns[tied_rows] = picked
        values[tied_rows] = torch.gather(sub, 1, picked)
    return values, columns


def _merge(best_values: torch.Tensor, best_indices: torch.Tensor, values: torch.Tensor,
           indices: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``k`` best of two candidate lists, ordered by (similarity desc, index asc)."""
    all_values = torch.cat([best_values, values], dim=1)
    all_indices = torch.cat([best_indices, indices], dim=1)
    by_index = torch.sort(all_indices, dim=1, stable=True).indices
    all_values = torch.gather(all_values, 1, by_index)
    all_indices = torch.gather(all_indices, 1, by_index)
    by_value = torch.sort(all_values, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(all_values, 1, by_value), torch.gather(all_indices, 1, by_value)


def nearest_neighbours(queries: np.ndarray, reference: Any, k: int = DEFAULT_K, *,
                       query_chunk: int = DEFAULT_QUERY_CHUNK,
                       reference_chunk: int = DEFAULT_REFERENCE_CHUNK,
                       progress: ProgressFn = no_progress,
                       cancel: threading.Event | None = None,
                       device: str | torch.device = "cpu") -> Neighbours:
    """The ``k`` reference rows most similar (cosine) to each query row, exactly.

    ``queries``: [Q, D] float array (in memory); ``reference``: [N, D], an array, a read-only
    ``np.memmap`` or any object with ``shape`` and row slicing (``reference[a:b]``), read one
    slice of at most ``reference_chunk`` rows at a time and only once. ``k`` must not exceed
    N. Progress runs over query x reference pairs; the cancel event is checked before every
    block and raises :class:`~cxrgan_desktop.core.jobs.Cancelled`.
    """
    queries = np.asarray(queries)
    shape = tuple(getattr(reference, "shape", ()))
    if queries.ndim != 2 or len(shape) != 2:
        raise ValueError(
            f"queries and reference must be 2-d [rows, features]; got {queries.shape} and "
            f"{shape}")
    if queries.shape[1] != shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} features, the reference {shape[1]}")
    n_queries, n_reference = queries.shape[0], shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive whole number, got {k!r}")
    if k > n_reference:
        raise ValueError(f"k = {k} neighbours asked for, but the reference has only "
                         f"{n_reference} rows")
    if query_chunk < 1 or reference_chunk < 1:
        raise ValueError("query_chunk and reference_chunk must be at least 1")
    k = int(k)
    device = torch.device(device)
    best_values = torch.full((n_queries, k), -np.inf, dtype=torch.float32, device=device)
    best_indices = torch.full((n_queries, k), -1, dtype=torch.int64, device=device)
    if n_queries == 0:
        progress(1.0, "nearest neighbours: no queries")
        return Neighbours(best_indices.cpu().numpy(), best_values.cpu().numpy())
    query_rows = torch.from_numpy(_checked_block(queries, "queries")).to(device)

    total = float(n_queries) * n_reference
    done = 0.0
    progress(0.0, "nearest neighbours")
    with torch.no_grad(), _full_float32(device):
        for start in range(0, n_reference, reference_chunk):
            check_cancel(cancel)
            stop = min(start + reference_chunk, n_reference)
            block = torch.from_numpy(_checked_block(reference[start:stop], "reference"))
            block = block.to(device)
            kk = min(k, stop - start)
            for q_start in range(0, n_queries, query_chunk):
                check_cancel(cancel)
                q_stop = min(q_start + query_chunk, n_queries)
                scores = query_rows[q_start:q_stop] @ block.T
                values, columns = _block_top_k(scores, kk)
                del scores
                best_values[q_start:q_stop], best_indices[q_start:q_stop] = _merge(
                    best_values[q_start:q_stop], best_indices[q_start:q_stop],
                    values, columns + start, k)
                done += float(q_stop - q_start) * (stop - start)
                progress(done / total, f"nearest neighbours: {stop:,} of {n_reference:,} "
                                       "reference rows")
    return Neighbours(best_indices.cpu().numpy(), best_values.cpu().numpy())
