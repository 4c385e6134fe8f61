"""How well an embedding recognises patients: verification AUROC and precision@1.

Both are measured on patients the network never trained on, as Packhaeuser et al. did:

- **Verification**: is a pair of images the same patient? Score: cosine similarity. Positives
  are every same-patient pair; negatives are every different-patient pair when there are at
  most ``max_negatives`` of them, otherwise a fixed random sample of that many (the count of
  pairs grows with the square of the images: 20,000 held-out ChestX-ray14 images make 200
  million). The AUROC is the project's exact Mann-Whitney AUROC (``metrics.auroc``).
- **Retrieval** (precision@1): for each image whose patient has another held-out image, is its
  most similar other held-out image (ties to the lower index) the same patient? This is the
  audit's question in miniature: a generated image's nearest training image.

Similarities are computed in row chunks, so memory stays bounded for any number of images.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from cxrgan_desktop.core.jobs import check_cancel
from cxrgan_desktop.metrics.auroc import auroc

MAX_NEGATIVES = 200_000
_CHUNK = 1024


@dataclass(frozen=True)
class VerificationPairs:
    """Index pairs ``(first, second)`` of images; ``same`` says which are one patient."""

    first: np.ndarray  # int64 [P]
    second: np.ndarray  # int64 [P]
    same: np.ndarray  # bool [P]


def verification_pairs(patient_ids: np.ndarray, max_negatives: int = MAX_NEGATIVES,
                       seed: int = 0) -> VerificationPairs:
    """All same-patient pairs ``i < j``, and all (or a seeded sample of) the others."""
    if max_negatives < 1:
        raise ValueError(f"max_negatives must be at least 1, got {max_negatives}")
    ids = np.asarray(patient_ids, dtype=np.int64)
    n = len(ids)
    first_pos, second_pos = [], []
    order = np.argsort(ids, kind="stable")
    bounds = np.flatnonzero(np.diff(ids[order])) + 1
    for group in np.split(order, bounds):
        if len(group) > 1:
            members = np.sort(group)
            a, b = np.triu_indices(len(members), k=1)
            first_pos.append(members[a])
            second_pos.append(members[b])
    pos_i = np.concatenate(first_pos) if first_pos else np.zeros(0, np.int64)
    pos_j = np.concatenate(second_pos) if second_pos else np.zeros(0, np.int64)
    negatives = n * (n - 1) // 2 - len(pos_i)
    if negatives <= max_negatives:
        a, b = np.triu_indices(n, k=1)
        keep = ids[a] != ids[b]
        neg_i, neg_j = a[keep], b[keep]
    else:
        # rejection sampling of distinct unordered different-patient pairs; negatives
        # outnumber the wanted count, so a few rounds suffice
        rng = np.random.default_rng(seed)
        chosen: set[tuple[int, int]] = set()
        while len(chosen) < max_negatives:
            a = rng.integers(0, n, size=2 * max_negatives)
            b = rng.integers(0, n, size=2 * max_negatives)
            for x, y in zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True):
                if x != y and ids[x] != ids[y]:
                    chosen.add((x, y))
                    if len(chosen) == max_negatives:
                        break
        pairs = np.array(sorted(chosen), dtype=np.int64)
        neg_i, neg_j = pairs[:, 0], pairs[:, 1]
    first = np.concatenate([pos_i, neg_i]).astype(np.int64)
    second = np.concatenate([pos_j, neg_j]).astype(np.int64)
    same = np.concatenate([np.ones(len(pos_i), bool), np.zeros(len(neg_i), bool)])
    return VerificationPairs(first, second, same)


def pair_similarities(embeddings: np.ndarray, pairs: VerificationPairs) -> np.ndarray:
    """Cosine similarity of each pair (rows are unit norm, so the inner product)."""
    e = np.asarray(embeddings, dtype=np.float32)
    out = np.empty(len(pairs.first), np.float32)
    step = 65536
    for start in range(0, len(out), step):
        a = e[pairs.first[start:start + step]]
        b = e[pairs.second[start:start + step]]
        out[start:start + step] = np.einsum("ij,ij->i", a, b)
    return out


def nearest_other(embeddings: np.ndarray, cancel: threading.Event | None = None) -> np.ndarray:
    """For each row, the index of the most similar other row (ties to the lower index);
    -1 when there is no other row."""
    e = np.asarray(embeddings, dtype=np.float32)
    n = len(e)
    out = np.full(n, -1, np.int64)
    if n < 2:
        return out
    for start in range(0, n, _CHUNK):
        check_cancel(cancel)
        sims = e[start:start + _CHUNK] @ e.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf
        out[start:start + _CHUNK] = np.argmax(sims, axis=1)  # first maximum: lower index
    return out


def precision_at_1(embeddings: np.ndarray, patient_ids: np.ndarray,
                   cancel: threading.Event | None = None) -> tuple[float, int]:
    """``(precision, queries)``: the share of images with another image of their patient
    whose nearest other image is of that patient; NaN when no patient has two images."""
    ids = np.asarray(patient_ids, dtype=np.int64)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    queries = counts[inverse.reshape(-1)] > 1
    if not queries.any():
        return math.nan, 0
    nearest = nearest_other(embeddings, cancel)
    hits = ids[nearest[queries]] == ids[queries]
    return float(hits.mean()), int(queries.sum())


@dataclass(frozen=True)
class ReidEvaluation:
    """Held-out recognition figures, with the counts that make them meaningful."""

    verification_auroc: float
    precision_at_1: float
    images: int
    patients: int
    positive_pairs: int
    negative_pairs: int
    retrieval_queries: int

    def to_json(self) -> dict[str, float | int | None]:
        def number(value: float) -> float | None:
            return None if math.isnan(value) else round(float(value), 6)

        return {"verification_auroc": number(self.verification_auroc),
                "precision_at_1": number(self.precision_at_1), "images": self.images,
                "patients": self.patients, "positive_pairs": self.positive_pairs,
                "negative_pairs": self.negative_pairs,
                "retrieval_queries": self.retrieval_queries}


def evaluate_embeddings(embeddings: np.ndarray, patient_ids: np.ndarray, *,
                        max_negatives: int = MAX_NEGATIVES, seed: int = 0,
                        cancel: threading.Event | None = None,
                        pairs: VerificationPairs | None = None) -> ReidEvaluation:
    """Verification AUROC and precision@1 of unit-norm ``embeddings`` ``[N, D]``;
    ``pairs``: those :func:`verification_pairs` gives for ``patient_ids`` (training measures
    every epoch on one set)."""
    ids = np.asarray(patient_ids, dtype=np.int64)
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings for {len(ids)} patient ids")
    if pairs is None:
        pairs = verification_pairs(ids, max_negatives, seed)
    value = auroc(pair_similarities(embeddings, pairs), pairs.same) if len(pairs.same) \
        else math.nan
    p1, queries = precision_at_1(embeddings, ids, cancel)
    return ReidEvaluation(value, p1, len(ids), len(np.unique(ids)), int(pairs.same.sum()),
                          int((~pairs.same).sum()), queries)
