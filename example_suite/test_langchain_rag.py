"""The RAG flow of test_rag.py built with LangChain: retrieve -> prompt -> model -> parser.

`llm.as_langchain()` runs the chain on the session's model (``--llm-model``) and the
`CallbackHandler` traces each step into the test's trace. Needs the ``[langchain]`` extra.
"""

import pytest

pytest.importorskip(
    "langchain_core", reason="needs langchain-core: pip install 'pytest-llmobs[langchain]'"
)

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableParallel, RunnablePassthrough
from test_rag import KNOWLEDGE_BASE, QUESTIONS, words

from pytest_llmobs.integrations.langchain import CallbackHandler

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question using ONLY the provided context."),
        ("user", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)


class KnowledgeBaseRetriever(BaseRetriever):
    """The ``k`` knowledge-base entries sharing the most words with the question."""

    k: int = 2

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        scored = [(len(words(query) & words(doc)), doc) for doc in KNOWLEDGE_BASE]
        ranked = [doc for score, doc in sorted(scored, key=lambda p: -p[0]) if score > 0]
        return [Document(doc) for doc in ranked[: self.k]]


def join_documents(documents: list[Document]) -> str:
    return "\n".join(document.page_content for document in documents)


def rag_chain(model: BaseChatModel) -> Runnable[str, str]:
    """question -> retrieve (context + question) -> prompt -> model -> parser -> answer."""
    retrieve = RunnableParallel(
        context=KnowledgeBaseRetriever() | join_documents, question=RunnablePassthrough()
    )
    return (
        retrieve.with_config(run_name="retrieve")
        | PROMPT.with_config(run_name="prompt")
        | model.with_config(run_name="model")
        | StrOutputParser().with_config(run_name="parser")
    ).with_config(run_name="rag")


@pytest.mark.parametrize(
    ("topic", "question", "reference", "feedback"), QUESTIONS, ids=[q[0] for q in QUESTIONS]
)
def test_langchain_rag_answers_from_context(llm, scorer, topic, question, reference, feedback):
    chain = rag_chain(llm.as_langchain(temperature=0.0))
    answer = chain.invoke(question, config={"callbacks": [CallbackHandler()]})
    grounded = scorer.groundedness(answer, "\n".join(KNOWLEDGE_BASE))
    assert grounded, grounded.reason
    assert scorer.similarity(answer, reference, threshold=0.3)
