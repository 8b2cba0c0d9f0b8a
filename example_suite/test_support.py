"""A support flow: a managed prompt, nested @observe spans, and trace attributes."""

from pytest_llmobs import observe, propagate_attributes


@observe
def classify(question: str) -> str:
    words = question.lower()
    return "billing" if "invoice" in words or "refund" in words else "general"


@observe
def answer_customer(llm, system_prompt, question: str) -> str:
    topic = classify(question)
    reply = llm.generate(
        [
            {"role": "system", "content": system_prompt.text},
            {"role": "user", "content": question},
        ],
        name="support-reply",
        prompt_version=system_prompt,
    )
    return f"[{topic}] {reply.text}"


def test_support_agent_greets_customer(llm, prompt, scorer):
    system_prompt = prompt("support-agent").compile(company="Acme", tone="polite")
    with propagate_attributes(user_id="user-42", session_id="support-session-7", tags=["support"]):
        reply = answer_customer(llm, system_prompt, "How do I get a refund for my invoice?")
    assert scorer.char_length(reply, min=10, max=500)
    scorer.score("mentions_company", "Acme" in reply)
    assert "Acme" in reply
