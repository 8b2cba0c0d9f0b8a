"""Semantic similarity of an output to a reference, scored by a pluggable backend.

`similarity` returns a numeric `EvalResult` in ``[0, 1]`` that passes at ``threshold``::

    >>> similarity("The capital of France is Paris.", "Paris is the capital of France.").passed
    True

Backends implement `SimilarityBackend` (a ``name`` and a batched ``similarities(pairs)``):
`TfidfBackend` (the default, offline: the mean of word- and character-level TF-IDF cosines) and
`EmbeddingBackend` (cosine of vectors from any embedding function: the seam for a model extra).

Fitting and caching. Without a corpus, TF-IDF is fitted on the texts being compared (one pair for
`similarity`, all pairs at once for `similarity_many`). With ``corpus=`` (say, the dataset's texts)
the IDF weights are fitted on the corpus *once*; the compared texts keep every word and character
n-gram of their own, and a term the corpus never saw weighs as much as a term in no corpus text
(the highest IDF), so ``"Tokyo Japan"`` and ``"Japan Tokyo"`` still match under a corpus about
Europe. `cached_tfidf` keeps the fitted backends of the last few corpora in an LRU keyed by the
corpus tuple, so calling ``similarity(output, expected, corpus=dataset_texts)`` once per test fits
once per dataset and scores like one ``similarity_many`` call (to the last bit of a float).
scikit-learn, scipy and numpy load on first use.

A ``None`` output (say, a tool-call-only answer) scores 0.0 and fails: it is not the text
``"None"``. A backend that gives a score that is not a finite number, or an `EmbeddingBackend`
whose vectors are not finite or not all of one length, is a ``ValueError`` naming the backend.
"""

from __future__ import annotations

import functools
import importlib
import math
import numbers
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.basic import as_text, none_expected, none_output

ANALYZERS = ("word", "char", "char_wb")
"""Analyzers `TfidfBackend` accepts: words, character n-grams, character n-grams inside words."""

_WORD_TOKEN = r"(?u)\b\w+\b"  # unlike sklearn's default, keeps one-character words such as "4"
_PUNCTUATION = re.compile(r"[^\w\s]+")
_CACHED_CORPORA = 4

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


def _scores(
    pairs: Sequence[tuple[str, str]], model: Callable[[list[tuple[str, str]]], list[float]]
) -> list[float]:
    """Scores of ``pairs``: equal texts 1.0, one empty 0.0, the rest from one ``model`` call."""
    stripped = [(a.strip(), b.strip()) for a, b in pairs]
    scores = [1.0 if a == b else 0.0 if not a or not b else None for a, b in stripped]
    todo = [i for i, score in enumerate(scores) if score is None]
    for i, value in zip(todo, model([pairs[i] for i in todo]) if todo else [], strict=True):
        scores[i] = value if math.isnan(value) else min(max(value, 0.0), 1.0)  # NaN: reported
    return [score for score in scores if score is not None]


def _normalise(text: str) -> str:
    """Lowercase, punctuation as spaces, spaces collapsed: "Paris." and "paris" score 1.0."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def _learnt(method: Callable[[Sequence[str]], Any], texts: Sequence[str]) -> Any:
    """``method(texts)`` (a vectoriser's fit or fit_transform), or None if nothing was learnt."""
    try:
        return method(texts)
    except ValueError:  # "empty vocabulary": e.g. punctuation only, no word tokens
        return None


@dataclass(frozen=True, slots=True)
class _CorpusWeights:
    """One analyzer's IDF weights fitted on a corpus, for texts with terms the corpus lacks."""

    analyze: Callable[[str], list[str]]
    idf: dict[str, float]
    unseen: float
    """The IDF of a term in no corpus text: ``ln(1 + n) + 1``, as scikit-learn's smooth IDF."""

    def matrix(self, texts: Sequence[str]) -> Any:
        """L2-normalised sublinear TF-IDF rows of ``texts`` over their own terms (None if none)."""
        import numpy as np

        sparse = importlib.import_module("scipy.sparse")
        vocabulary: dict[str, int] = {}
        indices: list[int] = []
        counts: list[int] = []
        indptr = [0]
        for text in texts:
            counted = Counter(self.analyze(text))
            indices.extend(vocabulary.setdefault(term, len(vocabulary)) for term in counted)
            counts.extend(counted.values())
            indptr.append(len(indices))
        if not vocabulary:
            return None
        idf = np.fromiter(
            (self.idf.get(term, self.unseen) for term in vocabulary), float, len(vocabulary)
        )
        columns = np.asarray(indices, dtype=np.int64)
        data = (1.0 + np.log(np.asarray(counts, dtype=np.float64))) * idf[columns]
        rows = np.repeat(np.arange(len(texts)), np.diff(indptr))
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(texts)))
        data /= norms[rows]
        return sparse.csr_matrix((data, columns, indptr), shape=(len(texts), len(vocabulary)))


class TfidfBackend:
    """Cosine similarity of TF-IDF vectors, averaged over the configured analyzers.

    >>> backend = TfidfBackend(["Paris is in France.", "Rome is in Italy."])
    >>> [round(s, 2) for s in backend.similarities([("Paris", "Paris."), ("Paris", "Rome")])]
    [1.0, 0.0]
    >>> backend.fit_count
    1

    ``fit_count`` counts fits: a corpus is fitted once, lazily or by `fit`; without a corpus each
    ``similarities`` call fits once on the texts it was given. A corpus sets the IDF weights only:
    terms it never saw still count, at the highest IDF.
    """

    name = "tfidf"

    def __init__(
        self,
        corpus: Sequence[str] | None = None,
        *,
        analyzers: Sequence[str] = ("word", "char_wb"),
        char_ngram_range: tuple[int, int] = (3, 5),
        word_ngram_range: tuple[int, int] = (1, 2),
    ) -> None:
        unknown = [a for a in analyzers if a not in ANALYZERS]
        if unknown or not analyzers:
            valid = ", ".join(ANALYZERS)
            given = tuple(analyzers)
            raise ValueError(f"analyzers={given!r} is not valid. Valid analyzers: {valid}.")
        for label, (low, high) in (("char", char_ngram_range), ("word", word_ngram_range)):
            if not 1 <= low <= high:
                raise ValueError(
                    f"{label}_ngram_range={(low, high)!r} is not valid; expected (min, max) "
                    "with 1 <= min <= max."
                )
        self.analyzers = tuple(analyzers)
        self.char_ngram_range = char_ngram_range
        self.word_ngram_range = word_ngram_range
        self.fit_count = 0
        self.corpus = tuple(corpus) if corpus else None  # fitted on lazily; None: on each batch
        self._weights: list[_CorpusWeights] | None = None

    def fit(self, corpus: Sequence[str]) -> TfidfBackend:
        """Fit the IDF weights on ``corpus`` now; returns ``self``."""
        texts = tuple(corpus)
        if not texts:
            raise ValueError("cannot fit a TfidfBackend on an empty corpus")
        self._weights = [self._fit_weights(a, texts) for a in self.analyzers]
        self.corpus = texts
        self.fit_count += 1
        return self

    def use_corpus(self, corpus: Sequence[str]) -> TfidfBackend:
        """Fit on ``corpus`` unless already fitted on an equal one; returns ``self``."""
        texts = tuple(corpus)
        if self._weights is None or texts != self.corpus:
            self.fit(texts)
        return self

    def similarities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One score per pair, from one fit (or none, when fitted) and one transform."""
        return _scores(pairs, self._cosines)

    def _cosines(self, pairs: list[tuple[str, str]]) -> list[float]:
        import numpy as np

        size = len(pairs)
        totals, counts = np.zeros(size), np.zeros(size)
        for matrix in self._matrices([a for a, _ in pairs] + [b for _, b in pairs]):
            if matrix is None:
                continue
            left, right = matrix[:size], matrix[size:]
            cosines = np.asarray(left.multiply(right).sum(axis=1)).ravel()
            # A pair with no features on either side says nothing for this analyzer.
            evidence = (left.getnnz(axis=1) > 0) | (right.getnnz(axis=1) > 0)
            totals += np.where(evidence, cosines, 0.0)
            counts += evidence
        return [float(m) for m in np.divide(totals, counts, out=np.zeros(size), where=counts > 0)]

    def _vectorizer(self, analyzer: str) -> Any:
        # Imported by name on first use: keeps plugin start-up fast and needs no stubs for mypy.
        text = importlib.import_module("sklearn.feature_extraction.text")
        word = analyzer == "word"
        return text.TfidfVectorizer(
            analyzer=analyzer,
            preprocessor=_normalise,
            ngram_range=self.word_ngram_range if word else self.char_ngram_range,
            sublinear_tf=True,
            **({"token_pattern": _WORD_TOKEN} if word else {}),
        )

    def _fit_weights(self, analyzer: str, corpus: tuple[str, ...]) -> _CorpusWeights:
        vectorizer = self._vectorizer(analyzer)
        fitted = _learnt(vectorizer.fit, corpus) is not None
        idf = (
            dict(
                zip(
                    vectorizer.get_feature_names_out().tolist(),
                    vectorizer.idf_.tolist(),
                    strict=True,
                )
            )
            if fitted
            else {}
        )
        return _CorpusWeights(vectorizer.build_analyzer(), idf, math.log(1 + len(corpus)) + 1)

    def _matrices(self, texts: list[str]) -> list[Any]:
        """L2-normalised TF-IDF rows of ``texts`` per analyzer; None where nothing was learnt."""
        if self._weights is None and self.corpus is not None:
            self.fit(self.corpus)
        if self._weights is not None:
            return [weights.matrix(texts) for weights in self._weights]
        self.fit_count += 1
        return [_learnt(self._vectorizer(a).fit_transform, texts) for a in self.analyzers]


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
        return _scores(pairs, self._cosines)

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


@functools.lru_cache(maxsize=_CACHED_CORPORA)
def _cached_tfidf(corpus: tuple[str, ...]) -> TfidfBackend:
    return TfidfBackend().fit(corpus)


def cached_tfidf(corpus: Sequence[str]) -> TfidfBackend:
    """The default `TfidfBackend` fitted on ``corpus``, shared by every call with an equal corpus.

    The last few corpora are kept (an LRU keyed by the corpus tuple), so per-item calls with the
    dataset's texts fit once per dataset. Do not `fit` the returned backend again.

    >>> cached_tfidf(["a b", "c d"]) is cached_tfidf(("a b", "c d"))
    True
    """
    return _cached_tfidf(tuple(corpus))


def clear_tfidf_cache() -> None:
    """Forget every fitted backend kept by `cached_tfidf`."""
    _cached_tfidf.cache_clear()


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
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
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
