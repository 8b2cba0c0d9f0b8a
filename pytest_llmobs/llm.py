"""The ``llm`` fixture's client: calls the run's model and records each call as a generation."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_llmobs.prompts import CompiledPrompt, Prompt
from pytest_llmobs.providers import Message, Provider, Usage
from pytest_llmobs.providers.base import CHAT_ROLES
from pytest_llmobs.providers.cache import CacheWriteError, ResponseCache
from pytest_llmobs.providers.calls import ModelCaller
from pytest_llmobs.providers.pricing import PriceTable
from pytest_llmobs.providers.retry import RetryPolicy
from pytest_llmobs.serialize import jsonable, safe_repr, snapshot, unrepresentable
from pytest_llmobs.trace_checks import check_name
from pytest_llmobs.trace_model import Observation
from pytest_llmobs.tracing import (
    CURRENT_OBSERVATION,
    close_observation,
    open_observation,
    restore_observation,
)

if TYPE_CHECKING:
    from pytest_llmobs.integrations.langchain_model import LLMObsChatModel

GENERATION_PARAMS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
"""Prompt ``config`` keys sent to the model as call parameters: OpenAI's Chat Completions request
parameters except ``messages``, ``model`` (the run's model wins), ``stream``/``stream_options``
(a call reads one whole answer) and ``metadata``/``store`` (names an application's own config
often uses; pass them to ``llm.generate`` to send them). Other keys are application settings (a
judge rubric's ``scale`` and ``threshold``, a Langfuse config's own fields): they stay in the
prompt version, unsent."""

PromptInput = str | CompiledPrompt | Sequence[Mapping[str, Any]]

_ANSWER_METADATA = ("finish_reason", "response_id", "usage_reported")
"""What a provider says of its answer that the generation keeps in its metadata."""


@dataclass(slots=True)
class LLMResult:
    """The answer of one model call."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    prompt_name: str | None = None
    prompt_version: int | None = None
    observation_id: str | None = None
    cost: float | None = None
    """Estimated USD (None when the model has no price)."""
    tool_calls: list[dict[str, Any]] | None = None
    """The tools the model asked to call, as the server sent them (OpenAI's
    ``message.tool_calls``: ``id``, ``type``, ``function.name``, ``function.arguments``)."""

    def __str__(self) -> str:
        return self.text


_CALL_FIELDS = frozenset({"tool_calls", "function_call"})
"""An assistant message holding one of these calls tools and may have no content."""


def to_messages(prompt: PromptInput) -> list[Message]:
    """Normalise a string, a compiled prompt or a list of chat messages to chat messages.

    A message keeps every field it was given (``name``, an assistant's ``tool_calls``, a tool
    result's ``tool_call_id``...), copied so that later changes to it are not recorded; its
    ``content`` may be text, a list of content parts (text, images) or, on an assistant message
    that calls tools, ``None``. Other content values are sent as their text."""
    if isinstance(prompt, CompiledPrompt):
        return prompt.messages
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages: list[Message] = []
    if not prompt:
        raise ValueError("generate() got no messages; expected a string or at least one message")
    for index, message in enumerate(prompt):
        calls = isinstance(message, Mapping) and not _CALL_FIELDS.isdisjoint(message.keys())
        if (
            not isinstance(message, Mapping)
            or "role" not in message
            or not ("content" in message or calls)
        ):
            raise TypeError(
                f"message {index}: expected a mapping with 'role' and 'content' (or 'tool_calls' "
                f"on an assistant message); got {safe_repr(message):.200}"
            )
        role = message["role"]
        if role not in CHAT_ROLES:  # (a mock answers any role; a real server refuses it)
            raise ValueError(
                f"message {index}: unknown role {safe_repr(role):.60}; expected one of "
                f"{', '.join(CHAT_ROLES)}"
            )
        content = message.get("content")
        if isinstance(content, (list, tuple)):
            content = jsonable(content)
        elif content is not None and not isinstance(content, str):
            content = _content_text(content, index)
        elif content is None and not calls:
            raise TypeError(
                f"message {index}: 'content' is None; only an assistant message with "
                "'tool_calls' may have no content"
            )
        rest = {k: snapshot(v) for k, v in message.items() if k not in ("role", "content")}
        messages.append({"role": str(message["role"]), "content": content, **rest})
    return messages


def _content_text(content: object, index: int) -> str:
    """A message's non-text ``content`` as the text sent; a `TypeError` naming the message
    when its ``str()`` fails (rather than that object's own error)."""
    try:
        return str.__str__(str(content))
    except Exception as exc:
        problem = unrepresentable(content, exc).removeprefix("<unrepresentable ")[:-1]
        raise TypeError(
            f"message {index}: 'content' cannot be turned into text ({problem})"
        ) from None


class LLM:
    """Generates with the session's model; every call becomes a generation observation.

    ``retry`` retries providers whose errors are ``retryable`` (providers that retry themselves,
    such as OpenAI's, adopt it instead); ``cache`` records or replays calls; ``prices`` prices
    generations of the models it knows. Attempts and cache use land on the generation's metadata.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self.provider = provider
        self.caller = ModelCaller(provider, retry=retry, cache=cache, prices=prices)

    @property
    def model(self) -> str:
        return self.provider.model

    def _prepare(
        self,
        prompt: PromptInput,
        name: str | None,
        params: dict[str, Any],
        link: CompiledPrompt | Prompt | None,
    ) -> tuple[Observation, list[Message], dict[str, Any], Observation | None]:
        if name is not None:
            check_name("generate", name)
        if not isinstance(prompt, (str, CompiledPrompt, Sequence)):
            raise TypeError(
                "generate() expects a string, a compiled prompt or a list of chat messages; "
                f"got {type(prompt).__name__}"
            )
        if link is not None and not isinstance(link, (CompiledPrompt, Prompt)):
            raise TypeError(
                "prompt_version= takes the prompt the messages came from: a Prompt "
                "(prompt(name)) or a CompiledPrompt (.compile(...)); "
                f"got {type(link).__name__} {safe_repr(link):.60}"
            )
        messages = to_messages(prompt)
        if link is None and isinstance(prompt, CompiledPrompt):
            link = prompt
        call_params = dict(params)
        if link is not None:
            defaults = {k: v for k, v in link.config.items() if k in GENERATION_PARAMS}
            call_params = {**defaults, **call_params}
        parent = CURRENT_OBSERVATION.get()
        observation = open_observation(
            name or (link.name if link is not None else "llm.generate"),
            type="generation",
            input=messages,
        )
        observation.model = self.provider.model
        # as sent: a ``stop`` or ``tools`` list the caller changes later was not (strings and
        # numbers, the usual parameters, are kept as they are)
        observation.model_parameters = {key: snapshot(value) for key, value in call_params.items()}
        if link is not None:
            observation.attach_prompt(link)
        return observation, messages, call_params, parent

    def _finish(self, observation: Observation, started: float, answer: Any) -> LLMResult:
        tool_calls = answer.tool_calls
        # a tool-calling answer is recorded as the assistant message, as the OpenAI integration
        # records it: its text alone is often empty
        observation.output = (
            answer.text
            if not tool_calls
            else {"role": "assistant", "content": answer.text or None, "tool_calls": tool_calls}
        )
        if answer.model and answer.model != observation.model:  # the server's dated name
            observation.metadata["requested_model"] = observation.model
            observation.model = answer.model
        for key in _ANSWER_METADATA:
            value = answer.metadata.get(key)
            if value is not None:
                observation.metadata[key] = value
        # unreported usage is unknown: no counts go to the store or an upload as 0s
        observation.usage = answer.usage.to_dict() if answer.usage.reported else None
        observation.cost = answer.cost
        latency = answer.latency_ms or (time.perf_counter() - started) * 1000.0
        observation.metadata["latency_ms"] = latency
        return LLMResult(
            text=answer.text,
            model=answer.model,
            usage=answer.usage,
            latency_ms=latency,
            prompt_name=observation.prompt_name,
            prompt_version=observation.prompt_version,
            observation_id=observation.id,
            cost=answer.cost,
            tool_calls=tool_calls,
        )

    def _failed(self, observation: Observation, started: float, exc: BaseException) -> None:
        if isinstance(exc, CacheWriteError):  # answered, not cached: keep what was paid for
            self._finish(observation, started, exc.response)
        latency = getattr(exc, "latency_ms", None)
        if isinstance(latency, float):  # (a CallError: its last attempt's, not the waits')
            observation.metadata["latency_ms"] = latency
        observation.fail(exc)

    def generate(
        self,
        prompt: PromptInput,
        *,
        name: str | None = None,
        prompt_version: CompiledPrompt | Prompt | None = None,
        cache_key_extra: Any = None,
        **params: Any,
    ) -> LLMResult:
        """Call the model and record the call as a generation.

        ``prompt`` is a string, chat messages or a compiled prompt (which links the generation
        to its prompt version and supplies defaults from its config). Pass ``prompt_version=``
        to link messages you assembled yourself to the prompt they came from. ``params``
        (temperature, max_tokens, ...) override the prompt's config. ``cache_key_extra``
        (JSON-able) tells apart calls that are otherwise identical in the ``--llm-cache``.
        """
        observation, messages, call_params, parent = self._prepare(
            prompt, name, params, prompt_version
        )
        token = CURRENT_OBSERVATION.set(observation)
        started = time.perf_counter()
        __tracebackhide__ = True  # a failed call shows the test's own line
        try:
            extra = cache_extra(observation, cache_key_extra)
            answer = self.caller.complete(messages, call_params, observation.metadata, extra)
            return self._finish(observation, started, answer)
        except BaseException as exc:
            self._failed(observation, started, exc)
            raise
        finally:
            restore_observation(token, parent)
            close_observation(observation)

    async def agenerate(
        self,
        prompt: PromptInput,
        *,
        name: str | None = None,
        prompt_version: CompiledPrompt | Prompt | None = None,
        cache_key_extra: Any = None,
        **params: Any,
    ) -> LLMResult:
        """`generate` for async code: waits without blocking the event loop."""
        observation, messages, call_params, parent = self._prepare(
            prompt, name, params, prompt_version
        )
        token = CURRENT_OBSERVATION.set(observation)
        started = time.perf_counter()
        __tracebackhide__ = True  # a failed call shows the test's own line
        try:
            extra = cache_extra(observation, cache_key_extra)
            answer = await self.caller.acomplete(messages, call_params, observation.metadata, extra)
            return self._finish(observation, started, answer)
        except BaseException as exc:
            self._failed(observation, started, exc)
            raise
        finally:
            restore_observation(token, parent)
            close_observation(observation)

    def as_langchain(self, **params: Any) -> LLMObsChatModel:
        """This model as a LangChain chat model (a ``BaseChatModel``), so a LangChain app runs
        on the session's model; ``params`` (temperature, max_tokens, ...) go with every call.

        Each call is recorded as one generation: in the generation a LangChain
        ``CallbackHandler`` opened for it when one is attached, else as `generate` records.
        Needs langchain-core (``pip install 'pytest-llmobs[langchain]'``).
        """
        __tracebackhide__ = True  # a missing extra shows the test's own line
        try:
            from pytest_llmobs.integrations.langchain_model import LLMObsChatModel
        except ImportError as exc:  # one line naming the extra, not the import machinery
            raise ImportError(str(exc)) from None
        return LLMObsChatModel.for_llm(self, **params)

    def __repr__(self) -> str:
        return f"LLM(model={self.model!r})"


def cache_extra(observation: Observation, extra: Any) -> Any:
    """The caller's ``cache_key_extra``, with the test's repeat index (root ``repeat``) if > 0."""
    root = observation.trace.root
    repeat = root.metadata.get("repeat") if root is not None else None
    return {"repeat": repeat, "extra": extra} if isinstance(repeat, int) and repeat else extra
