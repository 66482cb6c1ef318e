"""Which models TARS may use: providers, `provider:model` lists, prices and context windows, in one place.

A model is named `provider:model` (`anthropic:claude-sonnet-5-5`, `openai:gpt-5.1`, `ollama:qwen3-coder:30b`: the
provider is what comes before the first colon). CODING_MODELS, PLANNER_MODELS and VOICE_MODELS (core/config.py)
are ordered lists of such names: the first serves, the next takes over when it is unavailable (core/model.py,
FallbackModel). This module imports no SDK, so the settings can check the lists at start-up cheaply; the clients
are core/model.py (Anthropic) and core/openai_model.py (every OpenAI-compatible server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANTHROPIC, OPENAI = "anthropic", "openai"  # the two wire formats: Messages and Chat Completions


@dataclass(frozen=True)
class Provider:
    """Where one provider's models are served, and how TARS reaches them.

    Attributes:
        name: The provider's name in a model list (`ollama` in `ollama:qwen3-coder:30b`).
        title: How the owner hears it named ("Ollama").
        wire: The API it speaks: ANTHROPIC (Messages) or OPENAI (Chat Completions).
        base_url_setting: The setting holding its base URL.
        key_setting: The setting holding its API key (None: it takes none).
        key_required: Whether a request without a key is refused (a local server takes any or none).
        local: Runs on the owner's machine: its tokens cost nothing.
    """

    name: str
    title: str
    wire: str
    base_url_setting: str
    key_setting: str | None
    key_required: bool
    local: bool = False


PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    Provider("anthropic", "Anthropic", ANTHROPIC, "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", True),
    Provider("openai", "OpenAI", OPENAI, "OPENAI_BASE_URL", "OPENAI_API_KEY", True),
    Provider("openrouter", "OpenRouter", OPENAI, "OPENROUTER_BASE_URL", "OPENROUTER_API_KEY", True),
    Provider("ollama", "Ollama", OPENAI, "OLLAMA_BASE_URL", None, False, local=True),
    Provider("lmstudio", "LM Studio", OPENAI, "LMSTUDIO_BASE_URL", None, False, local=True),
    Provider("vllm", "vLLM", OPENAI, "VLLM_BASE_URL", "VLLM_API_KEY", False, local=True),
)}


@dataclass(frozen=True)
class ModelSpec:
    """One entry of a model list: the provider and the model's name as that provider spells it."""

    provider: str
    model: str

    @property
    def label(self) -> str:
        """`provider:model`, as the owner wrote it and as results and timelines name it."""
        return f"{self.provider}:{self.model}"

    @property
    def source(self) -> Provider:
        return PROVIDERS[self.provider]

    def __str__(self) -> str:
        return self.label


def parse_models(value: str, variable: str) -> list[ModelSpec]:
    """An ordered, comma-separated `provider:model` list; ValueError naming the variable and the bad entry."""
    specs: list[ModelSpec] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        provider, colon, model = entry.partition(":")
        provider, model = provider.strip().lower(), model.strip()
        if not colon or not model:
            raise ValueError(f"{variable} entry {entry!r} must be provider:model, e.g. anthropic:claude-sonnet-5-5 "
                             f"or ollama:qwen3-coder:30b (providers: {', '.join(PROVIDERS)})")
        if provider not in PROVIDERS:
            raise ValueError(f"{variable} entry {entry!r} names the provider {provider!r}, which TARS does not know: "
                             f"use one of {', '.join(PROVIDERS)} (any OpenAI-compatible server: openai with "
                             f"OPENAI_BASE_URL)")
        if re.search(r"\s", model):
            raise ValueError(f"{variable} entry {entry!r} has a space in the model name")
        spec = ModelSpec(provider, model)
        if spec in specs:
            raise ValueError(f"{variable} lists {spec.label} twice")
        specs.append(spec)
    if not specs:
        raise ValueError(f"{variable} lists no model")
    return specs


# --- prices: USD per million tokens ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Price:
    """What a model's tokens cost, in USD per million (cache reads and writes as factors of the input price)."""

    input: float
    output: float
    cache_read: float = 0.1
    cache_write: float = 1.0


# Matched by the longest prefix of the model name, so dated snapshots share their family's price. Anthropic bills a
# cache write at 1.25x input; OpenAI counts cached tokens inside the prompt's and bills them at its cached rate.
PRICES: dict[str, dict[str, Price]] = {
    ANTHROPIC: {
        "claude-opus-4-0": Price(15.0, 75.0, 0.1, 1.25),
        "claude-opus-4-1": Price(15.0, 75.0, 0.1, 1.25),
        "claude-opus": Price(5.0, 25.0, 0.1, 1.25),
        "claude-sonnet": Price(3.0, 15.0, 0.1, 1.25),
        "claude-haiku-4-5": Price(1.0, 5.0, 0.1, 1.25),
        "claude-haiku": Price(1.0, 5.0, 0.1, 1.25),
    },
    OPENAI: {
        "gpt-5": Price(1.25, 10.0, 0.1),
        "gpt-5-mini": Price(0.25, 2.0, 0.1),
        "gpt-5-nano": Price(0.05, 0.4, 0.1),
        "gpt-4.1": Price(2.0, 8.0, 0.25),
        "gpt-4.1-mini": Price(0.4, 1.6, 0.25),
        "gpt-4.1-nano": Price(0.1, 0.4, 0.25),
        "gpt-4o": Price(2.5, 10.0, 0.5),
        "gpt-4o-mini": Price(0.15, 0.6, 0.5),
        "o3": Price(2.0, 8.0, 0.25),
        "o4-mini": Price(1.1, 4.4, 0.25),
    },
}
FREE = Price(0.0, 0.0, 0.0, 0.0)


def _longest_prefix(table: dict, name: str):
    prefix = max((p for p in table if name.startswith(p)), key=len, default=None)
    return table[prefix] if prefix is not None else None


def price_of(spec: ModelSpec, overrides: dict[str, Price] | None = None) -> Price | None:
    """The model's price: MODEL_PRICES first, nothing for a local server, else the table (an OpenRouter model
    `vendor/name` at its vendor's list price); None when unknown."""
    if overrides and spec.label in overrides:
        return overrides[spec.label]
    if spec.source.local:
        return FREE
    if spec.provider == "openrouter":
        vendor, _, name = spec.model.partition("/")
        table = PRICES.get(vendor)
        return _longest_prefix(table, name) if table and name else None
    return _longest_prefix(PRICES.get(spec.provider, {}), spec.model)


# --- context windows: tokens a request may hold ---------------------------------------------------------------

CONTEXT_WINDOWS: dict[str, dict[str, int]] = {
    ANTHROPIC: {"claude": 200_000},
    OPENAI: {"gpt-5": 400_000, "gpt-4.1": 1_047_576, "gpt-4o": 128_000, "o3": 200_000, "o4-mini": 200_000},
}
DEFAULT_CONTEXT_WINDOW = 32_768
"""The window assumed for a model the table does not know (set MODEL_CONTEXT_WINDOWS for it): small, because a local
model served with a larger one only loses old tool output early, while one served with a smaller one would fail."""


def context_window(spec: ModelSpec, overrides: dict[str, int] | None = None) -> int:
    """The tokens one request to the model may hold: MODEL_CONTEXT_WINDOWS, else the table, else the default."""
    if overrides and spec.label in overrides:
        return overrides[spec.label]
    if spec.provider == "openrouter":
        vendor, _, name = spec.model.partition("/")
        found = _longest_prefix(CONTEXT_WINDOWS.get(vendor, {}), name)
    else:
        found = _longest_prefix(CONTEXT_WINDOWS.get(spec.provider, {}), spec.model)
    return found or DEFAULT_CONTEXT_WINDOW


def _per_model(value: str, variable: str, figures: str, example: str, read) -> dict:
    """`provider:model=<figures>, ...`: each model's label with read(figures), or None when they are malformed."""
    found: dict = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        name, equals, written = entry.rpartition("=")
        read_value = read(written) if equals else None
        if read_value is None:
            raise ValueError(f"{variable} entry {entry!r} must be provider:model={figures}, e.g. {example}")
        (spec,) = parse_models(name, variable)
        found[spec.label] = read_value
    return found


def parse_windows(value: str, variable: str) -> dict[str, int]:
    """`provider:model=tokens, ...` (e.g. `ollama:qwen3-coder:30b=65536`)."""
    return _per_model(value, variable, "tokens with at least 1024 tokens", "ollama:qwen3-coder:30b=65536",
                      lambda tokens: int(tokens) if tokens.strip().isdigit() and int(tokens) >= 1024 else None)


def parse_prices(value: str, variable: str) -> dict[str, Price]:
    """`provider:model=input/output, ...` in USD per million tokens (e.g. `openrouter:qwen/qwen3-coder=0.2/0.8`)."""
    def read(figures: str) -> Price | None:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*", figures)
        return Price(float(match[1]), float(match[2])) if match else None

    return _per_model(value, variable, "input/output in USD per million tokens", "openrouter:qwen/qwen3-coder=0.2/0.8",
                      read)
