"""LangChain runs as spans and generations of the current trace.

Pass a `CallbackHandler` in a runnable's config and every run LangChain reports becomes an
observation, nested as LangChain nests its runs (``run_id`` / ``parent_run_id``)::

    handler = CallbackHandler()
    answer = chain.invoke({"question": q}, config={"callbacks": [handler]})

- chains and runnables (LCEL sequences, ``RunnableParallel`` branches, lambdas, prompts, output
  parsers), retrievers and tools become spans with their input and output, and LangChain's run
  type (``chain``, ``prompt``, ``parser``, ``retriever``, ``tool``...) in ``metadata.run_type``;
- chat model and LLM runs become generations: model, parameters, input messages, output, token
  usage, and ``time_to_first_token_ms`` when the model streams;
- a run that raises is marked ``ERROR`` with the exception's message.

A top-level run attaches to the current observation (the test's root span under pytest, an open
``start_span``, or the item being run by ``run_experiment``). Outside any trace a top-level run
starts a trace of its own, as ``@observe`` does: it goes to the standalone trace sink when one is
set and is otherwise dropped. One handler serves any number of runs, sync or async, concurrently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from pytest_llmobs.integrations import missing_extra

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.documents import Document
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult
except ImportError:  # pragma: no cover - exercised with langchain-core hidden from imports
    raise missing_extra("the LangChain integration", "langchain-core", "langchain") from None

from pytest_llmobs.integrations.langchain_values import (
    message_dict,
    model_of_result,
    model_parameters,
    output_of_result,
    requested_model,
    simplify,
    usage_of_result,
)
from pytest_llmobs.trace_model import Observation, ObservationType
from pytest_llmobs.tracing import close_observation, open_observation

__all__ = ["CallbackHandler"]

Serialized = Mapping[str, Any] | None


def _name(serialized: Serialized, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if not name and serialized:
        ids = serialized.get("id") or [None]
        name = serialized.get("name") or ids[-1]
    return str(name or default)


def _metadata(
    kind: str, tags: Sequence[str] | None, metadata: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The run's own metadata (without LangChain's ``ls_*``/``lc_*`` keys), type and tags."""
    data = {k: v for k, v in (metadata or {}).items() if not k.startswith(("ls_", "lc_"))}
    data["run_type"] = kind
    if tags:
        data["tags"] = list(tags)
    return data


class CallbackHandler(BaseCallbackHandler):
    """Records LangChain chain, runnable, chat model / LLM, tool and retriever runs as nested
    spans and generations in the current trace (see the module docstring)."""

    run_inline = True
    """In async runs, record in the event loop, in event order (recording never blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[UUID, Observation] = {}
        self._lock = threading.Lock()

    def observation_for(self, run_id: UUID) -> Observation | None:
        """The open observation recording LangChain run ``run_id`` (None once it ended)."""
        with self._lock:
            return self._runs.get(run_id)

    # --- runs starting ----------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kind = str(kwargs.get("run_type") or "chain")
        name = _name(serialized, kwargs, kind)
        self._start(run_id, parent_run_id, name, kind, simplify(inputs), tags, metadata)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        batches = [[message_dict(m) for m in batch] for batch in messages]
        name = _name(serialized, kwargs, "chat_model")
        prompt = batches[0] if len(batches) == 1 else batches
        self._start_generation(
            run_id, parent_run_id, name, "chat_model", prompt, tags, metadata, kwargs
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _name(serialized, kwargs, "llm")
        prompt = simplify(prompts[0] if len(prompts) == 1 else list(prompts))
        self._start_generation(run_id, parent_run_id, name, "llm", prompt, tags, metadata, kwargs)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _name(serialized, kwargs, "retriever")
        self._start(run_id, parent_run_id, name, "retriever", simplify(query), tags, metadata)

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _name(serialized, kwargs, "tool")
        tool_input = simplify(inputs if inputs is not None else input_str)
        self._start(run_id, parent_run_id, name, "tool", tool_input, tags, metadata)

    # --- runs progressing and ending ---------------------------------------------------------

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        observation = self.observation_for(run_id)
        if observation is not None and "time_to_first_token_ms" not in observation.metadata:
            elapsed = (time.time() - observation.start_time) * 1000.0
            observation.metadata["time_to_first_token_ms"] = elapsed

    def on_chain_end(self, outputs: dict[str, Any] | Any, *, run_id: UUID, **kwargs: Any) -> None:
        # Streamed runs report their input only now (LangChain's ``defers_inputs``).
        late_input = kwargs.get("inputs")
        self._end(run_id, simplify(outputs), simplify(late_input) if late_input else None)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        observation = self._pop(run_id)
        if observation is None:
            return
        observation.output = output_of_result(response)
        usage = usage_of_result(response)
        if usage is not None:
            observation.usage = usage
        model = model_of_result(response)
        if model is not None:
            observation.model = model
        close_observation(observation)

    def on_retriever_end(
        self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._end(run_id, simplify(list(documents)))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, simplify(output))

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    # --- bookkeeping --------------------------------------------------------------------------

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        kind: str,
        input: Any,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        type: ObservationType = "span",
    ) -> Observation:
        parent = self.observation_for(parent_run_id) if parent_run_id is not None else None
        details = _metadata(kind, tags, metadata)
        if parent is None:  # a top-level run, or one whose parent this handler did not see
            observation = open_observation(name, type=type, input=input, metadata=details)
        else:
            observation = Observation(
                parent.trace, name, type=type, parent_id=parent.id, input=input, metadata=details
            )
        with self._lock:
            self._runs[run_id] = observation
        return observation

    def _start_generation(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        kind: str,
        prompt: Any,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        generation = self._start(
            run_id, parent_run_id, name, kind, prompt, tags, metadata, type="generation"
        )
        params = kwargs.get("invocation_params") or {}
        generation.model = requested_model(params, metadata or {})
        generation.model_parameters = model_parameters(params)

    def _pop(self, run_id: UUID) -> Observation | None:
        with self._lock:
            return self._runs.pop(run_id, None)

    def _end(self, run_id: UUID, output: Any, late_input: Any = None) -> None:
        observation = self._pop(run_id)
        if observation is not None:
            observation.update(input=late_input, output=output)
            close_observation(observation)

    def _fail(self, run_id: UUID, error: BaseException) -> None:
        observation = self._pop(run_id)
        if observation is None:
            return
        if isinstance(error, GeneratorExit):  # the consumer stopped reading a stream: no error
            observation.metadata["stopped_early"] = True
        else:
            observation.fail(error)
        close_observation(observation)

    def __repr__(self) -> str:
        with self._lock:
            return f"CallbackHandler(open_runs={len(self._runs)})"
