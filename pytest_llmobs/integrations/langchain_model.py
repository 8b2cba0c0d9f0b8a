"""The run's model as a LangChain chat model: what ``llm.as_langchain()`` returns.

Each call goes through the ``llm`` fixture's model with the session's retries, cache and prices,
and is recorded as one generation:

- when a `CallbackHandler` records the call, the model fills in the generation the handler opened
  for it (model, parameters, usage, cost, latency, cache and retry details), so the generation
  sits where LangChain ran the model and is not recorded twice;
- otherwise it is recorded as ``llm.generate`` records it, under the current observation.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import Field, PrivateAttr

from pytest_llmobs.integrations import missing_extra

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )
    from langchain_core.language_models import BaseChatModel
    from langchain_core.language_models.base import LangSmithParams
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
except ImportError:  # pragma: no cover - exercised with langchain-core hidden from imports
    raise missing_extra("llm.as_langchain()", "langchain-core", "langchain") from None

from pytest_llmobs.integrations.langchain import CallbackHandler
from pytest_llmobs.integrations.langchain_values import provider_messages
from pytest_llmobs.llm import cache_extra

if TYPE_CHECKING:
    from pytest_llmobs.llm import LLM, LLMResult
    from pytest_llmobs.trace_model import Observation

__all__ = ["LLMObsChatModel"]

RunManager = CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun


def _handler_generation(run_manager: RunManager | None) -> Observation | None:
    """The generation a `CallbackHandler` of this run opened for it, if one did."""
    if run_manager is None:
        return None
    for handler in run_manager.handlers:
        if isinstance(handler, CallbackHandler):
            observation = handler.observation_for(run_manager.run_id)
            if observation is not None and observation.type == "generation":
                return observation
    return None


def _chat_result(result: LLMResult) -> ChatResult:
    usage = result.usage
    message = AIMessage(
        content=result.text,
        usage_metadata={
            "input_tokens": usage.input,
            "output_tokens": usage.output,
            "total_tokens": usage.total,
        },
        response_metadata={"model_name": result.model},
    )
    return ChatResult(generations=[ChatGeneration(message=message)])


class LLMObsChatModel(BaseChatModel):
    """A LangChain chat model answering with the session's model (``--llm-model``).

    Build it with ``llm.as_langchain(**params)``; ``params`` (temperature, max_tokens...) go
    with every call, and call-time keyword arguments (``.bind(...)``, ``stop``) override them.
    """

    params: dict[str, Any] = Field(default_factory=dict)
    """Call parameters passed to the model on every call."""

    _llm: LLM = PrivateAttr()

    @classmethod
    def for_llm(cls, llm: LLM, **params: Any) -> LLMObsChatModel:
        """A chat model calling ``llm``'s model with ``params``."""
        model = cls(params=params)
        model._llm = llm
        return model

    @property
    def model_name(self) -> str:
        """The model answering (``mock-llm-v1``, ``gpt-4o-mini``...)."""
        return self._llm.model

    @property
    def _llm_type(self) -> str:
        return "pytest-llmobs"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self._llm.model, **self.params}

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        """Not supported: the model answers text (LangChain's own error names no reason)."""
        raise NotImplementedError(
            "llm.as_langchain() does not support tool calling (bind_tools): its answers are "
            "text; call llm.generate(messages, tools=[...]) to test tool calls"
        )

    def with_structured_output(self, schema: Any = None, **kwargs: Any) -> Any:
        """Not supported either (LangChain's default would call `bind_tools`)."""
        raise NotImplementedError(
            "llm.as_langchain() does not support structured output (with_structured_output): "
            "its answers are text; call llm.generate(messages, response_format=...) to test "
            "structured answers"
        )

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "pytest-llmobs"
        params["ls_model_name"] = self._llm.model
        return params

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        params = {**self.params, **kwargs}
        if stop:
            params["stop"] = stop
        return provider_messages(messages), params

    def _fill(self, generation: Observation, params: dict[str, Any]) -> Any:
        """Describe the call on the handler's generation; returns the cache key's extra part."""
        generation.model = self._llm.model
        generation.model_parameters = params
        return cache_extra(generation, None)

    # The `LLM` calls below are `generate`/`agenerate` split in two, so that the generation the
    # handler opened is filled in instead of a second one opened beside it.

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt, params = self._prepare(messages, stop, kwargs)
        generation = _handler_generation(run_manager)
        if generation is None:
            return _chat_result(self._llm.generate(prompt, name=self.get_name(), **params))
        extra, started = self._fill(generation, params), time.perf_counter()
        answer = self._llm.caller.complete(prompt, params, generation.metadata, extra)
        return _chat_result(self._llm._finish(generation, started, answer))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt, params = self._prepare(messages, stop, kwargs)
        generation = _handler_generation(run_manager)
        if generation is None:
            return _chat_result(await self._llm.agenerate(prompt, name=self.get_name(), **params))
        extra, started = self._fill(generation, params), time.perf_counter()
        answer = await self._llm.caller.acomplete(prompt, params, generation.metadata, extra)
        return _chat_result(self._llm._finish(generation, started, answer))
