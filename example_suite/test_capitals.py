"""The seed workflow: a dataset of capital-city questions gated on mean accuracy."""

import pytest


@pytest.mark.llm_dataset("capital-cities-tutorial", thresholds=["mean_accuracy >= 0.9"])
def test_capital(item, llm, scorer):
    answer = llm.generate(item.input)
    assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
