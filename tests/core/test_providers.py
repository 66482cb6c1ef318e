"""The owner names models as provider:model lists; a bad entry stops TARS at start-up with the variable named, and
every model has a price (or says it has none) and a context window."""

from __future__ import annotations

import pytest

from core.config import load_settings
from core.exceptions import ConfigError
from core.providers import DEFAULT_CONTEXT_WINDOW, FREE, ModelSpec, Price, context_window, parse_models, price_of


def test_a_list_keeps_its_order_and_model_names_keep_their_colons():
    specs = parse_models("anthropic:claude-sonnet-5-5, openai:gpt-5.1 ,ollama:qwen3-coder:30b", "CODING_MODELS")
    assert [s.label for s in specs] == ["anthropic:claude-sonnet-5-5", "openai:gpt-5.1", "ollama:qwen3-coder:30b"]
    assert specs[2] == ModelSpec("ollama", "qwen3-coder:30b")


@pytest.mark.parametrize("variable,value,said", [
    ("CODING_MODELS", "gpt-5.1", "CODING_MODELS entry 'gpt-5.1' must be provider:model"),
    ("VOICE_MODELS", "gemini:flash", "VOICE_MODELS entry 'gemini:flash' names the provider 'gemini'"),
    ("PLANNER_MODELS", "openai:", "PLANNER_MODELS entry 'openai:' must be provider:model"),
    ("CODING_MODELS", "openai:gpt-5.1,openai:gpt-5.1", "CODING_MODELS lists openai:gpt-5.1 twice"),
    ("MODEL_CONTEXT_WINDOWS", "ollama:qwen3=lots", "MODEL_CONTEXT_WINDOWS entry 'ollama:qwen3=lots' must be"),
    ("MODEL_PRICES", "openrouter:x/y=cheap", "MODEL_PRICES entry 'openrouter:x/y=cheap' must be"),
    ("OLLAMA_BASE_URL", "localhost:11434", "must be the http(s):// address of an OpenAI-compatible API"),
])
def test_a_bad_entry_fails_at_start_up_naming_the_variable(variable, value, said):
    with pytest.raises(ConfigError) as failed:
        load_settings(**{variable: value})
    assert said in str(failed.value)
    assert variable in str(failed.value)


def test_the_shorthands_fill_each_role_when_its_list_is_empty():
    settings = load_settings(CLAUDE_MODEL="claude-opus-5", CLAUDE_VOICE_MODEL="claude-haiku-5-5")
    assert [s.label for s in settings.models("coding")] == ["anthropic:claude-opus-5"]
    assert [s.label for s in settings.models("planner")] == ["anthropic:claude-opus-5"]  # as CODING_MODELS
    assert [s.label for s in settings.models("voice")] == ["anthropic:claude-haiku-5-5"]
    settings = load_settings(CODING_MODELS="openai:gpt-5.1,ollama:qwen3-coder:30b", PLANNER_MODELS="openai:o3")
    assert [s.label for s in settings.models("coding")] == ["openai:gpt-5.1", "ollama:qwen3-coder:30b"]
    assert [s.label for s in settings.models("planner")] == ["openai:o3"]


def test_prices_come_from_the_table_local_servers_are_free_and_the_rest_is_unknown():
    assert price_of(ModelSpec("anthropic", "claude-sonnet-5-5")) == Price(3.0, 15.0, 0.1, 1.25)
    assert price_of(ModelSpec("openai", "gpt-5-mini-2026-01-01")).input == 0.25  # the longest prefix wins
    assert price_of(ModelSpec("openrouter", "anthropic/claude-haiku-4.5")).output == 5.0  # at its vendor's price
    assert price_of(ModelSpec("ollama", "qwen3-coder:30b")) == FREE
    assert price_of(ModelSpec("openrouter", "qwen/qwen3-coder")) is None
    settings = load_settings(MODEL_PRICES="openrouter:qwen/qwen3-coder=0.2/0.8")
    assert settings.price(ModelSpec("openrouter", "qwen/qwen3-coder")) == Price(0.2, 0.8)


def test_context_windows_come_from_the_table_the_setting_or_a_small_default():
    assert context_window(ModelSpec("anthropic", "claude-sonnet-5-5")) == 200_000
    assert context_window(ModelSpec("openai", "gpt-4o-mini")) == 128_000
    assert context_window(ModelSpec("ollama", "qwen3-coder:30b")) == DEFAULT_CONTEXT_WINDOW == 32_768
    settings = load_settings(MODEL_CONTEXT_WINDOWS="ollama:qwen3-coder:30b=65536")
    assert settings.context_window(ModelSpec("ollama", "qwen3-coder:30b")) == 65_536
