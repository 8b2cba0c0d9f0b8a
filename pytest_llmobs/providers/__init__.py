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


class ModelRegistry:
    """Maps model names (the part of a model string before ``?``) to provider factories."""

    def __init__(self) -> None:
        self._factories: dict[str, ProviderFactory] = {}

    def register(self, name: str, factory: ProviderFactory) -> None:
        self._factories[name] = factory

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def resolve(self, spec: str) -> Provider:
        """Build the provider for ``spec``; unknown names raise `UnknownModelError`."""
        name = spec.split("?", 1)[0].strip()
        factory = self._factories.get(name)
        if factory is None:
            known = ", ".join(self.names) or "(none)"
            raise UnknownModelError(f"unknown model {name!r}; known models: {known}")
        return factory(spec)


def default_registry() -> ModelRegistry:
    """A registry holding the providers that ship with the plugin."""
    from pytest_llmobs.providers.mock import MOCK_MODEL_NAME, MockLLM

    registry = ModelRegistry()
    registry.register(MOCK_MODEL_NAME, MockLLM.from_spec)
    return registry
