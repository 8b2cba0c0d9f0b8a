"""The TF-IDF similarity backend (`TfidfBackend`, the default of `similarity`) and its cache.

Without a corpus, TF-IDF is fitted on the texts being compared (one pair for `similarity`, all
pairs at once for `similarity_many`). With ``corpus=`` (say, the dataset's texts) the IDF weights
are fitted on the corpus *once*; the compared texts keep every word and character n-gram of their
own, and a term the corpus never saw weighs as much as a term in no corpus text (the highest IDF),
so ``"Tokyo Japan"`` and ``"Japan Tokyo"`` still match under a corpus about Europe. `cached_tfidf`
keeps the fitted backends of the last few corpora in an LRU keyed by the corpus tuple, so calling
``similarity(output, expected, corpus=dataset_texts)`` once per test fits once per dataset and
scores like one ``similarity_many`` call (to the last bit of a float). scikit-learn, scipy and
numpy load on first use.

`pair_scores` is the rule every backend's scores follow (`EmbeddingBackend`'s too): equal texts
1.0, one empty text 0.0, the rest clipped to ``[0, 1]``.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

ANALYZERS = ("word", "char", "char_wb")
"""Analyzers `TfidfBackend` accepts: words, character n-grams, character n-grams inside words."""

_WORD_TOKEN = r"(?u)\b\w+\b"  # unlike sklearn's default, keeps one-character words such as "4"
_PUNCTUATION = re.compile(r"[^\w\s]+")
_CACHED_CORPORA = 4


def pair_scores(
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
        return pair_scores(pairs, self._cosines)

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
