"""A RAG flow over a small in-memory knowledge base: retrieve -> rank -> prompt-managed call."""

import re

import pytest

from pytest_llmobs import start_span

KNOWLEDGE_BASE = [
    "Refunds are issued to the original payment method within 5 business days.",
    "Standard shipping takes 3 to 7 business days; express shipping takes 1 to 2.",
    "You can reset your password from the login page by choosing 'Forgot password'.",
    "Our support team is available Monday to Friday, 9am to 6pm CET.",
    "Orders can be cancelled free of charge until they are shipped.",
]

QUESTIONS = [
    ("refund", "How long do refunds take to arrive?", "within 5 business days", "positive"),
    (
        "shipping",
        "How long does express shipping take?",
        "express shipping takes 1 to 2",
        "positive",
    ),
    ("password", "How do I reset my password?", "choose 'Forgot password'", "neutral"),
]


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def retrieve(question: str, k: int = 3) -> list[str]:
    with start_span("retrieve", input={"question": question, "k": k}) as span:
        scored = [(len(words(question) & words(doc)), doc) for doc in KNOWLEDGE_BASE]
        hits = [doc for score, doc in sorted(scored, key=lambda p: -p[0]) if score > 0][:k]
        span.update(output=hits, metadata={"knowledge_base_size": len(KNOWLEDGE_BASE)})
        return hits


def rank(question: str, documents: list[str]) -> list[str]:
    with start_span("rank", input=documents) as span:
        ranked = sorted(documents, key=lambda d: -len(words(question) & words(d)))
        span.update(output=ranked)
        return ranked


@pytest.mark.parametrize(
    ("topic", "question", "reference", "feedback"), QUESTIONS, ids=[q[0] for q in QUESTIONS]
)
def test_rag_answers_from_context(llm, prompt, scorer, topic, question, reference, feedback):
    rag_prompt = prompt("rag-answer")
    documents = rank(question, retrieve(question))
    context = "\n".join(documents[:2])
    with start_span("answer", input=question) as span:
        answer = llm.generate(rag_prompt.compile(context=context, question=question))
        span.update(output=answer.text)
    scorer.score("user_feedback", feedback, comment="simulated thumbs from the support team")
    grounded = scorer.groundedness(answer.text, context)
    judged = scorer.llm_judge("judge/groundedness", answer.text, context=context)
    similar = scorer.similarity(answer.text, reference, threshold=0.3)
    scorer.score("resolved", bool(grounded and judged and similar))
    assert grounded, grounded.reason
    assert judged >= 0.8
    assert similar
