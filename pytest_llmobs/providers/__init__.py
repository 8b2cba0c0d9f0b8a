"""Model providers and the registry that resolves a model string to one."""

from __future__ import annotations

from collections.abc import Callable

from pytest_llmobs.providers.base import (
    Message,
    ModelResponse,
    Provider,
    ProviderError,
    UnknownModelError,
    Usage,
)

ProviderFactory = Callable[[str], Provider]
"""Builds a provider from the full model string (name plus ``?options``)."""

__all__ = [
    "ConfigError",
    "Message",
    "ModelRegistry",
    "ModelResponse",
    "Provider",
    "ProviderError",
    "ProviderFactory",
    "UnknownModelError",
    "Usage",
    "default_registry",
]


class ConfigError(ValueError):
    """A provider cannot be set up: a missing API key, a bad base URL or price file.

    ``names_its_setting``: the message starts with the setting it is about (``LLMOBS_PRICES:``),
    so it is not shown as a problem of the model option."""

    def __init__(self, message: str, *, names_its_setting: bool = False) -> None:
        super().__init__(message)
        self.names_its_setting = names_its_setting


class ModelRegistry:
    """Maps model names (the part of a model string before ``?``) to provider factories.

    Besides exact names, a provider family answers to ``<prefix>:<model>`` (``openai:gpt-4o``)
    and, optionally, to plain names its ``plain`` predicate accepts (``gpt-4o``).
    """

    def __init__(self) -> None:
        self._factories: dict[str, ProviderFactory] = {}
        self._families: dict[str, tuple[ProviderFactory, Callable[[str], bool] | None, str]] = {}

    def register(self, name: str, factory: ProviderFactory) -> None:
        self._factories[name] = factory

    def register_prefix(
        self,
        prefix: str,
        factory: ProviderFactory,
        *,
        plain: Callable[[str], bool] | None = None,
        plain_hint: str = "",
    ) -> None:
        """Send ``<prefix>:<model>`` (and plain names ``plain`` accepts) to ``factory``."""
        self._families[prefix] = (factory, plain, plain_hint)

    @property
    def names(self) -> list[str]:
        """Known model names and families, as an unknown-model error lists them."""
        families = [
            f"{prefix}:<model>" + (f" ({hint})" if hint else "")
            for prefix, (_, _, hint) in sorted(self._families.items())
        ]
        return sorted(self._factories) + families

    def resolve(self, spec: str) -> Provider:
        """Build the provider for ``spec``; unknown names raise `UnknownModelError`."""
        name = spec.split("?", 1)[0].strip()
        factory = self._factories.get(name)
        if factory is None:
            prefix, colon, rest = name.partition(":")
            family = self._families.get(prefix) if colon and rest else None
            if family is None:
                family = next(
                    (f for f in self._families.values() if f[1] is not None and f[1](name)), None
                )
            factory = family[0] if family is not None else None
        if factory is None:
            known = ", ".join(self.names) or "(none)"
            raise UnknownModelError(f"unknown model {name!r}; known models: {known}")
        return factory(spec)


def default_registry() -> ModelRegistry:
    """A registry holding the providers that ship with the plugin."""
    from pytest_llmobs.providers import openai, openai_config
    from pytest_llmobs.providers.mock import MOCK_MODEL_NAME, MockLLM

    registry = ModelRegistry()
    registry.register(MOCK_MODEL_NAME, MockLLM.from_spec)
    registry.register_prefix(
        openai_config.PREFIX,
        openai.OpenAIProvider.from_spec,
        plain=openai.is_openai_model,
        plain_hint=openai.PLAIN_HINT,
    )
    return registry
