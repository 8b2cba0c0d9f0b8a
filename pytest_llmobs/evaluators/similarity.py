"""Semantic similarity of an output to a reference, scored by a pluggable backend.

`similarity` returns a numeric `EvalResult` in ``[0, 1]`` that passes at ``threshold``::

    >>> similarity("The capital of France is Paris.", "Paris is the capital of France.").passed
    True

Backends implement `SimilarityBackend` (a ``name`` and a batched ``similarities(pairs)``):
`TfidfBackend` (the default, offline: the mean of word- and character-level TF-IDF cosines) and
`EmbeddingBackend` (cosine of vectors from any embedding function: the seam for a model extra).

With ``corpus=`` (say, the dataset's texts) the default backend fits its IDF weights on the
corpus once per dataset (`cached_tfidf`); see `pytest_llmobs.evaluators.tfidf`.

A ``None`` output (say, a tool-call-only answer) scores 0.0 and fails: it is not the text
``"None"``. A backend that gives a score that is not a finite number, or an `EmbeddingBackend`
whose vectors are not finite or not all of one length, is a ``ValueError`` naming the backend.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.basic import as_text, check_share, none_expected, none_output
from pytest_llmobs.evaluators.tfidf import TfidfBackend, cached_tfidf, pair_scores

Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]
"""An embedding function: one vector per text, in order."""


@runtime_checkable
class SimilarityBackend(Protocol):
    """Scores text pairs in one batch, each in ``[0, 1]``; see `EmbeddingBackend` for an example."""

    @property
    def name(self) -> str: ...

    def similarities(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


def shorten(text: str, limit: int = 60) -> str:
    """``repr(text)`` cut to ``limit`` characters: ``shorten("abc")`` is ``"'abc'"``."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


class EmbeddingBackend:
    """Cosine similarity of embedding vectors, clipped to ``[0, 1]``.

    ``embed`` maps a list of texts to one vector per text; each distinct text is embedded once
    per ``similarities`` call.

    >>> toy = EmbeddingBackend(lambda texts: [[t.count("cat"), t.count("dog")] for t in texts])
    >>> toy.similarities([("cat", "a cat"), ("cat", "dog")])
    [1.0, 0.0]
    """

    def __init__(self, embed: Embed, *, name: str = "embedding") -> None:
        self.embed = embed
        self.name = name

    def similarities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return pair_scores(pairs, self._cosines)

    def _cosines(self, pairs: list[tuple[str, str]]) -> list[float]:
        import numpy as np

        index = {text: i for i, text in enumerate(dict.fromkeys(t for pair in pairs for t in pair))}
        embedded = self.embed(list(index))
        try:
            vectors = np.asarray(embedded, dtype=np.float64)
        except (TypeError, ValueError) as error:  # ragged, or not numbers
            lengths = sorted({len(v) for v in embedded if hasattr(v, "__len__")})
            what = (
                f"vectors of different lengths {lengths}"
                if len(lengths) > 1
                else f"something that is not one vector of numbers per text ({error})"
            )
            raise ValueError(
                f"embedding backend {self.name!r} returned {what} for {len(index)} texts; "
                "expected one vector per text, all of one length"
            ) from None
        if vectors.ndim != 2 or vectors.shape[0] != len(index):
            raise ValueError(
                f"embedding backend {self.name!r} returned an array of shape "
                f"{vectors.shape!r} for {len(index)} texts; expected one vector per text"
            )
        if not np.isfinite(vectors).all():
            bad = [text for text, row in index.items() if not np.isfinite(vectors[row]).all()]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise ValueError(
                f"embedding backend {self.name!r} returned a vector with NaN or infinity for "
                f"{shorten(bad[0])}{more}; expected finite numbers"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        units = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        left = units[[index[a] for a, _ in pairs]]
        right = units[[index[b] for _, b in pairs]]
        return [float(cosine) for cosine in np.einsum("ij,ij->i", left, right)]


def _shown(value: float, threshold: float) -> str:
    """``value`` to two decimals, or more when rounding would make it reach ``threshold``."""
    shown = f"{value:.2f}"
    return shown if float(shown) < threshold else f"{value:.6f}".rstrip("0")


def similarity_many(
    pairs: Iterable[tuple[object, object]],
    *,
    threshold: float = 0.8,
    backend: SimilarityBackend | None = None,
    corpus: Sequence[str] | None = None,
) -> list[EvalResult]:
    """`similarity` for many ``(output, reference)`` pairs, vectorised in one batch.

    >>> [r.passed for r in similarity_many([("Paris", "Paris"), ("Paris", "Tokyo")])]
    [True, False]
    """
    check_share("similarity", "threshold", threshold)
    given = list(pairs)
    shown = [
        (as_text("similarity", output), as_text("similarity", reference, "reference"))
        for output, reference in given
    ]
    texts = [
        pair
        for pair, (output, reference) in zip(shown, given, strict=True)
        if output is not None and reference is not None
    ]
    corpus_texts = tuple(corpus) if corpus is not None else ()
    if backend is None:
        backend = cached_tfidf(corpus_texts) if corpus_texts else TfidfBackend()
    elif corpus_texts and isinstance(backend, TfidfBackend):
        backend.use_corpus(corpus_texts)  # other backends have no use for a corpus
    scored = backend.similarities(texts) if texts else []
    if len(scored) != len(texts):
        raise ValueError(
            f"similarity backend {backend.name!r} gave {len(scored)} scores for {len(texts)} "
            "pairs; expected one score per pair"
        )
    values = iter(scored)
    results = []
    for (output, reference), (original, original_reference) in zip(shown, given, strict=True):
        if original is None:
            results.append(none_output("similarity", 0.0))
            continue
        if original_reference is None:
            results.append(none_expected("similarity", 0.0))
            continue
        value = next(values)
        if isinstance(value, bool) or not (
            isinstance(value, numbers.Real) and math.isfinite(value)
        ):
            raise ValueError(
                f"similarity backend {backend.name!r} gave {value!r} for {shorten(output)} and "
                f"{shorten(reference)}; expected a number from 0 to 1"
            )
        value = float(value)
        passed = value >= threshold
        reason = (
            ""
            if passed
            else f"similarity {_shown(value, threshold)} < {threshold:g} between "
            f"{shorten(output)} and {shorten(reference)} ({backend.name})"
        )
        results.append(EvalResult("similarity", value, passed, reason))
    return results


def similarity(
    output: object,
    reference: object,
    *,
    threshold: float = 0.8,
    backend: SimilarityBackend | None = None,
    corpus: Sequence[str] | None = None,
) -> EvalResult:
    """How similar ``output`` is to ``reference``, in ``[0, 1]``; passes at ``threshold``.

    ``backend`` defaults to TF-IDF; ``corpus`` (e.g. the dataset's texts) fits its weights once,
    through `cached_tfidf`, or through ``backend.use_corpus`` for a given `TfidfBackend`.

    >>> similarity("Paris", "Tokyo")
    <similarity FAILED value=0.0: similarity 0.00 < 0.8 between 'Paris' and 'Tokyo' (tfidf)>
    """
    return similarity_many(
        [(output, reference)], threshold=threshold, backend=backend, corpus=corpus
    )[0]
