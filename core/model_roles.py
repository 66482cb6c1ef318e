"""A role's models, built from the settings: CODING_MODELS, PLANNER_MODELS or VOICE_MODELS as one FallbackModel.

core/model.py is the seam and Claude's client, core/openai_model.py every OpenAI-compatible server's; this module
picks between them for each listed `provider:model` (core/providers.py), with the provider's key, address, retries,
timeout, price and context window, and checks that each one answers (`python main_tars.py models --check`).
"""

from __future__ import annotations

import time

from core import providers
from core.defaults import MODEL_MAX_TOKENS
from core.exceptions import ModelError
from core.model import AnthropicModel, FallbackModel, Turn
from core.openai_model import OpenAIModel
from core.providers import ModelSpec


class UnusableModel:
    """A listed model TARS cannot call (its provider's key is not set): it answers every request with the reason,
    so the next model takes over and the timeline says why; alone, the task fails with the fix."""

    def __init__(self, spec: ModelSpec, reason: str):
        self.name, self.reason = spec.label, reason
        self.context_window = providers.DEFAULT_CONTEXT_WINDOW

    def query(self, **request) -> Turn:
        raise ModelError(self.reason, transient=False, fallback=True)

    async def stream(self, **request) -> Turn:
        raise ModelError(self.reason, transient=False, fallback=True)

    async def aclose(self) -> None:
        """Nothing to close."""


def build_one(settings, spec: ModelSpec, max_tokens: int = MODEL_MAX_TOKENS):
    """The client of one listed model, as the settings configure its provider."""
    source = spec.source
    key = settings.secret(source.key_setting) if source.key_setting else None
    if source.key_required and not key:
        return UnusableModel(spec, f"{source.key_setting} is not set, so {spec.label} cannot be used: add it to .env "
                                   f"(see env.example) and restart, or take {spec.label} off the model list.")
    window, price = settings.context_window(spec), settings.price(spec)
    if source.wire == providers.ANTHROPIC:
        return AnthropicModel(api_key=key, model=spec.model, base_url=settings.ANTHROPIC_BASE_URL,
                              max_retries=settings.ANTHROPIC_MAX_RETRIES, timeout=settings.ANTHROPIC_TIMEOUT_SECONDS,
                              max_tokens=max_tokens, price=price, context_window=window)
    return OpenAIModel(spec, api_key=key, base_url=getattr(settings, source.base_url_setting),
                       max_retries=settings.OPENAI_MAX_RETRIES, timeout=settings.OPENAI_TIMEOUT_SECONDS,
                       max_tokens=max_tokens, price=price, context_window=window)


def build_models(settings, role: str = "coding", max_tokens: int = MODEL_MAX_TOKENS) -> FallbackModel:
    """A role's models (core/config.MODEL_ROLES) as one FallbackModel."""
    return FallbackModel([build_one(settings, spec, max_tokens) for spec in settings.models(role)])


def check_model(settings, spec: ModelSpec) -> dict:
    """One cheap request to a listed model (`models --check`): {answers, seconds, reason} — the reason names the fix."""
    model = build_one(settings, spec, max_tokens=16)
    started = time.monotonic()
    try:
        model.query(system=[{"type": "text", "text": "Answer with one word."}], tools=[],
                    messages=[{"role": "user", "content": [{"type": "text", "text": "Say OK."}]}])
    except ModelError as exc:
        return {"answers": False, "seconds": round(time.monotonic() - started, 3), "reason": str(exc)}
    return {"answers": True, "seconds": round(time.monotonic() - started, 3), "reason": ""}
