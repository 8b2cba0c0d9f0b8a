"""The similarity and groundedness evaluators, their backends and the fitted-vectoriser cache."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmobs.evaluators.groundedness import groundedness, split_sentences
from pytest_llmobs.evaluators.similarity import (
    EmbeddingBackend,
    SimilarityBackend,
    similarity,
    similarity_many,
)
from pytest_llmobs.evaluators.tfidf import TfidfBackend, cached_tfidf, clear_tfidf_cache

DATASET = [
    ("The capital of France is Paris.", "Paris is the capital of France."),
    ("Tokyo is the capital city of Japan.", "The capital of Japan is Tokyo."),
    ("Rome, of course.", "Rome is the capital of Italy."),
    ("I think it is Barcelona.", "Madrid is the capital of Spain."),
    ("Water boils at 100 degrees Celsius.", "At sea level water boils at 100 °C."),
    ("", "Berlin"),
    ("!!!", "Canberra is the capital of Australia."),
    ("Ottawa", "Ottawa"),
]
CORPUS = [reference for _, reference in DATASET] + [
    "What is the capital of France?",
    "What is the capital of Japan?",
    "At what temperature does water boil?",
]


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    clear_tfidf_cache()
    yield
    clear_tfidf_cache()


def value(result: Any) -> float:
    return float(result.value)


# --- similarity: scores -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["Paris", "The capital of France is Paris.", "  Ünïcödé 東京  "])
def test_identical_texts_score_one(text: str) -> None:
    assert value(similarity(text, text)) == pytest.approx(1.0)
    assert value(similarity(text, text + " ", corpus=CORPUS)) == pytest.approx(1.0)


def test_case_and_punctuation_do_not_matter() -> None:
    assert value(similarity("Paris.", "paris")) == pytest.approx(1.0)


@pytest.mark.parametrize("corpus", [None, CORPUS])
def test_paraphrase_scores_higher_than_unrelated_text(corpus: list[str] | None) -> None:
    reference = "Paris is the capital of France."
    paraphrase = similarity("The capital of France is Paris.", reference, corpus=corpus)
    unrelated = similarity("Bananas are rich in potassium.", reference, corpus=corpus)
    assert paraphrase > unrelated
    assert unrelated < 0.3


@pytest.mark.parametrize("corpus", [None, CORPUS])
@pytest.mark.parametrize(("output", "reference"), DATASET)
def test_symmetric_and_within_range(output: str, reference: str, corpus: list[str] | None) -> None:
    forward = value(similarity(output, reference, corpus=corpus))
    backward = value(similarity(reference, output, corpus=corpus))
    assert forward == pytest.approx(backward, abs=1e-12)
    assert 0.0 <= forward <= 1.0


def test_corpus_changes_weights_but_stays_in_range() -> None:
    output, reference = "The capital of France is Paris.", "Paris is the capital of France."
    alone = value(similarity(output, reference))
    fitted = value(similarity(output, reference, corpus=CORPUS))
    assert fitted != pytest.approx(alone, abs=1e-6)
    assert 0.0 <= fitted <= 1.0


def test_texts_unseen_at_fit_time_use_the_fitted_vocabulary() -> None:
    backend = TfidfBackend(CORPUS)
    [score] = backend.similarities([("Parisian capitals", "Paris is the capital")])
    assert 0.0 < score < 1.0
    assert backend.fit_count == 1


# --- similarity: results ------------------------------------------------------------------------


def test_result_is_numeric_and_passes_at_threshold() -> None:
    result = similarity("The capital of France is Paris.", "Paris is the capital of France.")
    assert result.name == "similarity"
    assert isinstance(result.value, float)
    assert result.passed is (result.value >= 0.8)
    assert not similarity("a b c", "a b d", threshold=1.0)
    assert similarity("a b c", "a b d", threshold=0.0)


def test_failure_reason_names_values_texts_and_backend() -> None:
    result = similarity("Paris", "Tokyo")
    assert not result
    assert result.reason == "similarity 0.00 < 0.8 between 'Paris' and 'Tokyo' (tfidf)"


def test_failure_reason_never_shows_a_value_rounded_up_to_the_threshold() -> None:
    result = similarity("a b c d e f g h", "a b c d e f g x", threshold=0.7)
    if not result:
        shown = float(result.reason.split()[1])
        assert shown < 0.7


def test_failure_reason_shortens_long_texts() -> None:
    result = similarity("x " * 500, "y " * 500)
    assert len(result.reason) < 200
    assert "...'" in result.reason


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_outside_zero_one_is_an_error(threshold: float) -> None:
    with pytest.raises(ValueError, match=rf"threshold must be between 0 and 1, got {threshold}"):
        similarity("a", "b", threshold=threshold)


def test_unknown_analyzer_is_an_error() -> None:
    with pytest.raises(
        ValueError, match=r"analyzers=\('words',\) is not valid\. Valid analyzers: "
    ):
        TfidfBackend(analyzers=["words"])


def test_bad_ngram_range_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"char_ngram_range=\(5, 3\) is not valid"):
        TfidfBackend(char_ngram_range=(5, 3))


@pytest.mark.parametrize("analyzers", [("word",), ("char",), ("char_wb",), ("word", "char")])
def test_each_analyzer_scores_identical_texts_one(analyzers: tuple[str, ...]) -> None:
    backend = TfidfBackend(analyzers=analyzers)
    assert backend.similarities([("red apple pie", "red apple pie!"), ("red", "blue")])[0] == (
        pytest.approx(1.0)
    )


def test_backends_satisfy_the_protocol() -> None:
    assert isinstance(TfidfBackend(), SimilarityBackend)
    assert isinstance(EmbeddingBackend(lambda texts: [[1.0]] * len(texts)), SimilarityBackend)


# --- vectorising a dataset once -----------------------------------------------------------------


def test_similarity_many_equals_per_pair_similarity_with_the_same_corpus() -> None:
    many = similarity_many(DATASET, corpus=CORPUS, threshold=0.5)
    single = [similarity(o, r, corpus=CORPUS, threshold=0.5) for o, r in DATASET]
    assert [value(r) for r in many] == pytest.approx([value(r) for r in single], abs=1e-9)
    assert [r.passed for r in many] == [r.passed for r in single]
    assert [r.reason for r in many] == [r.reason for r in single]


def test_similarity_many_equals_per_pair_with_an_explicit_backend() -> None:
    backend = TfidfBackend()
    many = similarity_many(DATASET, backend=backend, corpus=CORPUS)
    single = [similarity(o, r, backend=backend, corpus=CORPUS) for o, r in DATASET]
    assert [value(r) for r in many] == pytest.approx([value(r) for r in single], abs=1e-9)
    assert backend.fit_count == 1


def test_per_item_calls_with_a_dataset_corpus_fit_once() -> None:
    for output, reference in DATASET:
        similarity(output, reference, corpus=list(CORPUS))
    similarity_many(DATASET, corpus=tuple(CORPUS))
    assert cached_tfidf(CORPUS).fit_count == 1


def test_sklearn_vectorisers_are_fitted_once_per_analyzer(monkeypatch: pytest.MonkeyPatch) -> None:
    vectorizer_class = importlib.import_module("sklearn.feature_extraction.text").TfidfVectorizer
    fits: list[str] = []
    for method in ("fit", "fit_transform"):
        original = getattr(vectorizer_class, method)

        def counted(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            fits.append(self.analyzer)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(vectorizer_class, method, counted)

    for output, reference in DATASET:
        similarity(output, reference, corpus=CORPUS)
    similarity_many(DATASET, corpus=CORPUS)
    assert sorted(fits) == ["char_wb", "word"]


def test_without_corpus_a_batch_is_fitted_once() -> None:
    backend = TfidfBackend()
    backend.similarities(DATASET)
    assert backend.fit_count == 1
    backend.similarities(DATASET)
    assert backend.fit_count == 2


def test_explicit_fit_and_use_corpus_reuse_the_fitted_state() -> None:
    backend = TfidfBackend().fit(CORPUS)
    backend.use_corpus(list(CORPUS))
    backend.similarities(DATASET)
    assert (backend.fit_count, backend.corpus) == (1, tuple(CORPUS))
    backend.use_corpus(["another corpus"])
    assert backend.fit_count == 2


def test_empty_corpus_cannot_be_fitted_and_means_no_corpus() -> None:
    with pytest.raises(ValueError, match="cannot fit a TfidfBackend on an empty corpus"):
        TfidfBackend().fit([])
    assert value(similarity("a b", "a c", corpus=[])) == value(similarity("a b", "a c"))


def test_cache_is_shared_by_equal_corpora_and_bounded() -> None:
    first = cached_tfidf(CORPUS)
    assert cached_tfidf(tuple(CORPUS)) is first
    for n in range(4):
        cached_tfidf([f"corpus {n}"])
    assert cached_tfidf(CORPUS) is not first


# --- degenerate and large inputs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("", "", 1.0),
        ("   ", "\n", 1.0),
        ("", "Paris", 0.0),
        ("Paris", " ", 0.0),
        ("!!!", "!!!", 1.0),
        ("...", "?!", 0.0),
    ],
)
@pytest.mark.parametrize("corpus", [None, CORPUS, ["!!!", "???"]])
def test_degenerate_inputs(
    output: str, reference: str, expected: float, corpus: list[str] | None
) -> None:
    assert value(similarity(output, reference, corpus=corpus)) == expected


@pytest.mark.parametrize(
    ("output", "reference"),
    [
        ("Café crème brûlée", "cafe creme brulee"),
        ("東京は日本の首都です", "日本の首都は東京です"),
        ("Москва — столица России", "Столица России — Москва"),
        ("مرحبا بالعالم", "مرحبا"),
        ("🙂🙂 emoji 🎉", "emoji 🎉"),
        ("\x00\u200b\ufeff", "zero\u200bwidth"),
    ],
)
def test_unicode_inputs_score_within_range(output: str, reference: str) -> None:
    for corpus in (None, CORPUS):
        score = value(similarity(output, reference, corpus=corpus))
        assert 0.0 <= score <= 1.0


def test_unicode_paraphrase_scores_high() -> None:
    assert similarity("Москва — столица России", "Столица России — Москва", threshold=0.5)


def test_one_megabyte_input() -> None:
    big = "The quick brown fox jumps over the lazy dog. " * (1_000_000 // 45)
    assert len(big) >= 999_000
    score = value(similarity(big, "A quick brown fox jumps over a lazy dog."))
    assert 0.3 < score <= 1.0


# --- embedding backend --------------------------------------------------------------------------


def letter_counts(texts: Sequence[str]) -> list[list[float]]:
    """A toy deterministic embedding: how often each of a-z occurs."""
    return [[float(text.lower().count(chr(c))) for c in range(97, 123)] for text in texts]


def test_embedding_backend_cosine() -> None:
    backend = EmbeddingBackend(letter_counts, name="letters")
    same, anagram, disjoint = backend.similarities(
        [("abc", "abc!"), ("listen", "silent"), ("ab", "xy")]
    )
    assert same == pytest.approx(1.0)
    assert anagram == pytest.approx(1.0)
    assert disjoint == 0.0
    result = similarity("ab", "xy", backend=backend)
    assert result.reason == "similarity 0.00 < 0.8 between 'ab' and 'xy' (letters)"


def test_embedding_backend_clips_negative_cosines_and_zero_vectors() -> None:
    def signed(texts: Sequence[str]) -> list[list[float]]:
        return [
            [-1.0] if text.startswith("-") else [0.0] if text == "zero" else [1.0] for text in texts
        ]

    backend = EmbeddingBackend(signed)
    assert backend.similarities([("up", "-down"), ("up", "zero"), ("up", "top")]) == [0.0, 0.0, 1.0]


def test_embedding_backend_embeds_each_distinct_text_once_per_batch() -> None:
    calls: list[list[str]] = []

    def embed(texts: Sequence[str]) -> list[list[float]]:
        calls.append(list(texts))
        return letter_counts(texts)

    scores = similarity_many(
        [("ab", "ba"), ("ab", "cd"), ("", "x"), ("same", "same")],
        backend=EmbeddingBackend(embed),
        corpus=CORPUS,  # ignored by non-TF-IDF backends
    )
    assert calls == [["ab", "ba", "cd"]]
    assert [value(s) for s in scores] == [pytest.approx(1.0), 0.0, 0.0, 1.0]


def test_embedding_backend_with_wrong_shape_is_an_error() -> None:
    backend = EmbeddingBackend(lambda texts: [[1.0, 0.0]], name="broken")
    with pytest.raises(
        ValueError,
        match=r"embedding backend 'broken' returned an array of shape \(1, 2\) for 2 texts; "
        "expected one vector per text",
    ):
        backend.similarities([("a", "b")])


def test_embedding_backend_with_vectors_of_different_lengths_is_an_error_naming_it() -> None:
    backend = EmbeddingBackend(lambda texts: [[1.0] * len(t) for t in texts], name="ragged")

    with pytest.raises(ValueError) as caught:
        backend.similarities([("a", "bb")])

    assert str(caught.value) == (
        "embedding backend 'ragged' returned vectors of different lengths [1, 2] for 2 texts; "
        "expected one vector per text, all of one length"
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_embedding_backend_with_a_non_finite_vector_is_an_error_naming_it(bad: float) -> None:
    backend = EmbeddingBackend(
        lambda texts: [[bad, 1.0] if t == "b" else [1.0, 0.0] for t in texts], name="nan"
    )

    with pytest.raises(ValueError) as caught:
        similarity("a", "b", backend=backend)

    assert str(caught.value) == (
        "embedding backend 'nan' returned a vector with NaN or infinity for 'b'; "
        "expected finite numbers"
    )


class NanBackend:
    name = "nan-scores"

    def similarities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [float("nan")] * len(pairs)


def test_a_backend_score_that_is_no_number_is_an_error_naming_the_backend() -> None:
    with pytest.raises(ValueError) as caught:
        similarity("a", "b", backend=NanBackend())

    assert str(caught.value) == (
        "similarity backend 'nan-scores' gave nan for 'a' and 'b'; expected a number from 0 to 1"
    )


# --- a corpus weighs terms, it does not hide the ones it lacks ----------------------------------

EUROPE = ["Paris is the capital of France.", "Rome is the capital of Italy."]


def test_texts_the_corpus_never_saw_still_match() -> None:
    without = value(similarity("Tokyo Japan", "Japan Tokyo"))
    with_corpus = value(similarity("Tokyo Japan", "Japan Tokyo", corpus=EUROPE))

    assert without == pytest.approx(0.75, abs=0.01)
    assert with_corpus >= without  # the character n-grams match fully, the words in part
    assert value(similarity("Kyoto temple", "Lima", corpus=EUROPE)) == 0.0


def test_a_corpus_lowers_the_weight_of_its_common_words() -> None:
    # "capital" is in every corpus text: sharing it says less than sharing "France"
    shared_common = value(similarity("capital Berlin", "capital Oslo", corpus=EUROPE))
    shared_rare = value(similarity("France Berlin", "France Oslo", corpus=EUROPE))

    assert 0.0 < shared_common < shared_rare


def test_in_corpus_terms_weigh_as_scikit_learn_tfidf_fitted_on_the_corpus() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    backend = TfidfBackend(EUROPE, analyzers=("word",), word_ngram_range=(1, 1))
    pair = ("Paris capital", "Rome is the capital")
    reference = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b").fit(EUROPE)
    left, right = reference.transform(list(pair))

    assert backend.similarities([pair]) == [pytest.approx(left.multiply(right).sum())]


def test_unseen_terms_get_the_idf_of_a_term_in_no_corpus_text() -> None:
    import math

    backend = TfidfBackend(EUROPE, analyzers=("word",), word_ngram_range=(1, 1))
    # "capital" is in both corpus texts: idf ln(3/3) + 1 = 1; "tokyo" in none: ln(3/1) + 1
    capital, tokyo = 1.0, math.log(3) + 1

    (score,) = backend.similarities([("capital tokyo", "capital")])

    assert score == pytest.approx(capital / math.hypot(capital, tokyo))


def test_a_none_output_scores_zero_in_a_batch_without_disturbing_the_others() -> None:
    results = similarity_many([(None, "None"), ("Paris", "Paris"), (None, "x")], corpus=EUROPE)

    assert [(r.value, r.passed, r.reason) for r in results] == [
        (0.0, False, "output is None, not text"),
        (1.0, True, ""),
        (0.0, False, "output is None, not text"),
    ]
    assert not similarity(None, "None")
    assert not groundedness(None, "None")


# --- groundedness -------------------------------------------------------------------------------

CONTEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower in Paris. It was completed in 1889. "
    "The tower is 330 metres tall and was designed by the company of Gustave Eiffel."
)


def test_extractive_answer_is_fully_grounded() -> None:
    answer = "The Eiffel Tower is in Paris. It was completed in 1889.\nIt is 330 metres tall!"
    result = groundedness(answer, CONTEXT)
    assert (result.name, result.value, result.passed, result.reason) == (
        "groundedness",
        1.0,
        True,
        "",
    )


def test_hallucinated_sentence_lowers_the_value_and_is_quoted() -> None:
    answer = (
        "The Eiffel Tower is in Paris. It was completed in 1889. "
        "Napoleon commissioned it to celebrate his victory at Waterloo."
    )
    result = groundedness(answer, CONTEXT)
    assert result.value == pytest.approx(2 / 3)
    assert not result
    assert result.reason == (
        "1 of 3 sentences unsupported: 'Napoleon commissioned it to celebrate his victory at Wa...'"
    )


def test_unsupported_sentences_are_reported_even_when_passing() -> None:
    answer = "It was completed in 1889. The tower is 330 metres tall. It is painted bright pink."
    result = groundedness(answer, CONTEXT, threshold=0.5)
    assert result.passed
    assert "'It is painted bright pink.'" in result.reason


def test_list_context_is_joined() -> None:
    context = ["The Eiffel Tower is in Paris.", "It was completed in 1889."]
    assert groundedness("The Eiffel Tower was completed in 1889, in Paris.", context).value == 1.0


def test_near_verbatim_sentence_is_supported_by_fuzzy_match() -> None:
    answer = "The Eifel Towr is a wrought-iron latice tower in Paris."
    assert groundedness(answer, CONTEXT, min_support=1.0).value == 1.0
    assert groundedness("Eifel Towr latice", CONTEXT, min_support=1.0).value == 0.0


def test_sentences_without_content_words_are_supported() -> None:
    assert groundedness("It is what it is. Paris!", "Paris").value == 1.0


@pytest.mark.parametrize("answer", ["", "   \n "])
def test_empty_answer(answer: str) -> None:
    result = groundedness(answer, CONTEXT)
    assert (result.value, result.passed, result.reason) == (0.0, False, "empty answer")


@pytest.mark.parametrize("context", ["", " ", [], ["", "\n"]])
def test_empty_context(context: str | list[str]) -> None:
    result = groundedness("Paris is in France.", context, threshold=0.0)
    assert (result.value, result.passed, result.reason) == (0.0, False, "empty context")


def test_groundedness_bad_shares_are_errors() -> None:
    with pytest.raises(ValueError, match=r"min_support must be between 0 and 1, got 2"):
        groundedness("a", "a", min_support=2)


def test_sentence_splitting_is_unicode_aware() -> None:
    assert split_sentences("Pi is 3.14. Really?\n\nYes…  東京です。大阪？") == [
        "Pi is 3.14.",
        "Really?",
        "Yes…",
        "東京です。",
        "大阪？",
    ]


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_similarity_is_always_in_range_and_symmetric(output: str, reference: str) -> None:
    forward = value(similarity(output, reference))
    assert 0.0 <= forward <= 1.0
    assert forward == pytest.approx(value(similarity(reference, output)), abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=80), st.text(max_size=80)), max_size=5))
def test_similarity_many_is_always_in_range_with_a_corpus(pairs: list[tuple[str, str]]) -> None:
    for result in similarity_many(pairs, corpus=CORPUS):
        assert 0.0 <= value(result) <= 1.0


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=200), st.lists(st.text(max_size=100), max_size=3))
def test_groundedness_is_always_in_range(answer: str, context: list[str]) -> None:
    assert 0.0 <= value(groundedness(answer, context)) <= 1.0
