"""A classifier evaluated as a run: labels per item, F1 and a confusion matrix per dataset."""

import pytest

from pytest_llmobs import observe

KEYWORDS = {
    "billing": ("refund", "invoice", "charged", "payment"),
    "shipping": ("parcel", "delivery", "shipping", "arrived"),
    "account": ("log in", "password", "account"),
}


@observe
def classify_intent(message: str) -> str:
    text = message.lower()
    for intent, keywords in KEYWORDS.items():
        if any(keyword in text for keyword in keywords):
            return intent
    return "other"


@pytest.mark.llm_dataset("support-intents", thresholds=["f1_macro >= 0.8", "accuracy >= 0.8"])
def test_intent(item, scorer):
    # A classifier is judged as a whole: one miss is fine, the marker's thresholds gate the
    # run's F1 and accuracy. The label score records predicted and expected for both.
    scorer.label(classify_intent(item.input), item.expected_output)
