"""LangChain values as the plain data a trace records: messages, documents, usage, model names."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_core.prompt_values import PromptValue, StringPromptValue

from pytest_llmobs.serialize import snapshot

__all__ = [
    "message_dict",
    "model_of_result",
    "model_parameters",
    "output_of_result",
    "provider_messages",
    "requested_model",
    "simplify",
    "text_of",
    "usage_of_result",
]

_ROLES: tuple[tuple[type[BaseMessage], str], ...] = (
    (HumanMessage, "user"),
    (AIMessage, "assistant"),
    (SystemMessage, "system"),
    (ToolMessage, "tool"),
    (FunctionMessage, "function"),
)
_MODEL_KEYS = ("model", "model_name", "model_id")
_NOT_PARAMETERS = frozenset({"_type", *_MODEL_KEYS})
_MAX_DEPTH = 6


def role_of(message: BaseMessage) -> str:
    """The chat role of a LangChain message: ``user``, ``assistant``, ``system``, ``tool``..."""
    if isinstance(message, ChatMessage):
        return message.role
    return next((role for kind, role in _ROLES if isinstance(message, kind)), message.type)


def text_of(message: BaseMessage) -> str:
    """The message's text: its content, or the text blocks of a multi-part content."""
    content = message.content
    if isinstance(content, str):
        return str(content)
    parts = (
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in content
        if isinstance(block, str) or block.get("type") == "text"
    )
    return "".join(parts)


def message_dict(message: BaseMessage) -> dict[str, Any]:
    """``{"role", "content"}``, plus ``tool_calls``, ``tool_call_id`` and ``name`` when set."""
    data: dict[str, Any] = {"role": role_of(message), "content": simplify(message.content)}
    if isinstance(message, AIMessage) and message.tool_calls:
        data["tool_calls"] = [simplify(dict(call)) for call in message.tool_calls]
    if isinstance(message, ToolMessage):
        data["tool_call_id"] = message.tool_call_id
    if message.name:
        data["name"] = message.name
    return data


def provider_messages(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """Messages as the plugin's providers take them (OpenAI's chat format): role and text, or
    the content parts when some are not text (images), plus an AI message's tool calls, a
    tool message's ``tool_call_id`` and a ``name`` when set."""
    return [_provider_message(m) for m in messages]


def _provider_message(message: BaseMessage) -> dict[str, Any]:
    content = message.content
    parts = isinstance(content, list) and any(
        not isinstance(block, str) and block.get("type") != "text" for block in content
    )
    data: dict[str, Any] = {
        "role": role_of(message),
        "content": simplify(content) if parts else text_of(message),
    }
    if isinstance(message, AIMessage) and message.tool_calls:
        data["tool_calls"] = [
            {
                "id": call.get("id") or "",
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call.get("args") or {})},
            }
            for call in message.tool_calls
        ]
    if isinstance(message, ToolMessage):
        data["tool_call_id"] = message.tool_call_id
    if message.name:
        data["name"] = message.name
    return data


def simplify(value: Any, _depth: int = 0) -> Any:
    """Messages, prompt values and documents (also inside dicts and lists) as plain data."""
    if isinstance(value, str):  # LangChain's text is a str subclass (TextAccessor): make it str
        return str(value)
    if isinstance(value, BaseMessage):
        return message_dict(value)
    if isinstance(value, StringPromptValue):
        return value.to_string()
    if isinstance(value, PromptValue):
        return [message_dict(m) for m in value.to_messages()]
    if isinstance(value, Document):
        return {"page_content": value.page_content, "metadata": dict(value.metadata)}
    if _depth < _MAX_DEPTH and isinstance(value, Mapping):
        return {key: simplify(item, _depth + 1) for key, item in value.items()}
    if _depth < _MAX_DEPTH and isinstance(value, (list, tuple)):
        return [simplify(item, _depth + 1) for item in value]
    return value


def requested_model(
    invocation_params: Mapping[str, Any], metadata: Mapping[str, Any]
) -> str | None:
    """The model a chat model / LLM run asks for, from LangChain's tracing parameters."""
    name = metadata.get("ls_model_name")
    if not name:
        name = next((invocation_params[k] for k in _MODEL_KEYS if invocation_params.get(k)), None)
    if not name:
        name = invocation_params.get("_type")
    return str(name) if name else None


def model_parameters(invocation_params: Mapping[str, Any]) -> dict[str, Any]:
    """The call parameters of a run (temperature, max_tokens, stop...), without the model, as
    they were sent (a ``stop`` list changed later was not)."""
    return {
        key: snapshot(value)
        for key, value in invocation_params.items()
        if key not in _NOT_PARAMETERS and value is not None
    }


def _generations(result: LLMResult) -> list[Generation]:
    return [generation for batch in result.generations for generation in batch]


def output_of_result(result: LLMResult) -> Any:
    """The text of the answer, the assistant message when it calls tools, or a list of them."""
    outputs: list[Any] = []
    for generation in _generations(result):
        if isinstance(generation, ChatGeneration):
            message = generation.message
            has_calls = isinstance(message, AIMessage) and bool(message.tool_calls)
            outputs.append(message_dict(message) if has_calls else text_of(message))
        else:
            outputs.append(generation.text)
    return outputs[0] if len(outputs) == 1 else outputs


def usage_of_result(result: LLMResult) -> dict[str, int] | None:
    """Token usage as ``{"input", "output", "total"}``, from the message or the LLM output."""
    for generation in _generations(result):
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None)
        if usage:
            return _usage(usage["input_tokens"], usage["output_tokens"], usage.get("total_tokens"))
    llm_output = result.llm_output or {}
    raw = llm_output.get("token_usage") or llm_output.get("usage")
    if isinstance(raw, Mapping):
        prompt = raw.get("prompt_tokens", raw.get("input_tokens"))
        completion = raw.get("completion_tokens", raw.get("output_tokens"))
        if isinstance(prompt, int) and isinstance(completion, int):
            return _usage(prompt, completion, raw.get("total_tokens"))
    return None


def _usage(input_tokens: int, output_tokens: int, total: Any = None) -> dict[str, int]:
    total = total if isinstance(total, int) else input_tokens + output_tokens
    return {"input": input_tokens, "output": output_tokens, "total": total}


def model_of_result(result: LLMResult) -> str | None:
    """The model that answered, as the provider reported it (None when it did not say)."""
    for generation in _generations(result):
        message = getattr(generation, "message", None)
        metadata = getattr(message, "response_metadata", None) or {}
        name = metadata.get("model_name") or metadata.get("model")
        if name:
            return str(name)
    llm_output = result.llm_output or {}
    name = llm_output.get("model_name") or llm_output.get("model")
    return str(name) if name else None
