"""The one place TARS reads its environment.

`get_settings()` validates every variable at start-up; a bad value stops the
process with a ConfigError naming the variable and the fix. Values come from the
process environment, then from `.env` in the current directory. TARS_ENV_FILE
names another env file (the test suite sets it to /dev/null so a developer's
.env never leaks into tests); it is the only variable read outside Settings.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import providers, schedules
from core.exceptions import ConfigError, InvalidSchedule
from core.redis_conn import safe_url, with_embedded_password


def default_data_dir() -> Path:
    """TARS's own data when DATA_DIR is unset: the per-user data folder (~/.local/share/tars on Linux,
    ~/Library/Application Support/tars on macOS, %LOCALAPPDATA%\\tars on Windows). Never inside TARS's checkout,
    so a task's worktree does not pick up TARS's own pyproject.toml, git repository or .env."""
    return Path(platformdirs.user_data_dir("tars", appauthor=False))


def _listed(value: str, pattern: str, what: str) -> str:
    """A comma-separated list (semicolons too) whose every item matches pattern, normalized; else what it is not."""
    items = [i.strip() for i in value.replace(";", ",").split(",") if i.strip()]
    bad = [i for i in items if not re.fullmatch(pattern, i)]
    if bad:
        raise ValueError(f"{', '.join(bad)} is not {what} (comma-separated list)")
    return ",".join(items)


def _base_url(value: str | None, what: str) -> str | None:
    """An http(s):// address without its trailing slash; else what it must be."""
    if value is None:
        return None
    value = value.strip().rstrip("/")
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"must be {what}")
    return value


CRON_HINT = ("must be a cron expression such as '0 9 * * 1' (minute hour day month weekday), or empty for no "
             "digest")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=True)

    # --- Claude -----------------------------------------------------------
    ANTHROPIC_API_KEY: SecretStr | None = None
    ANTHROPIC_BASE_URL: str | None = None
    CLAUDE_MODEL: str = "claude-sonnet-5-5"
    ANTHROPIC_MAX_RETRIES: int = Field(3, ge=0, le=10)
    ANTHROPIC_TIMEOUT_SECONDS: float = Field(120.0, gt=0)

    # --- models and providers (core/providers.py) -------------------------
    CODING_MODELS: str = Field("", description=(
        "The models that run tasks, in order: comma-separated provider:model (e.g. anthropic:claude-sonnet-5-5,"
        "openai:gpt-5.1,ollama:qwen3-coder:30b). The first serves; when it is unavailable (overloaded, rate limited, "
        "a server error, a timeout, no connection, no such model, no key) the next takes over for the rest of the "
        "task. Empty: anthropic:CLAUDE_MODEL."))
    PLANNER_MODELS: str = Field("", description=(
        "The models that split a big goal into subtasks (PLAN_GOALS), in order, as CODING_MODELS. Empty: "
        "CODING_MODELS."))
    VOICE_MODELS: str = Field("", description=(
        "The models that hold phone conversations, in order, as CODING_MODELS: a fast one first. Empty: "
        "anthropic:CLAUDE_VOICE_MODEL."))
    OPENAI_API_KEY: SecretStr | None = None
    OPENAI_BASE_URL: str | None = Field(None, description=(
        "The openai provider's server: unset, OpenAI's own; any OpenAI-compatible Chat Completions server "
        "otherwise (its /v1 address)."))
    OPENROUTER_API_KEY: SecretStr | None = None
    OPENROUTER_BASE_URL: str = "https://openrouter.ai/api/v1"
    OLLAMA_BASE_URL: str = "http://localhost:11434/v1"
    LMSTUDIO_BASE_URL: str = "http://localhost:1234/v1"
    VLLM_BASE_URL: str = "http://localhost:8000/v1"
    VLLM_API_KEY: SecretStr | None = None
    OPENAI_MAX_RETRIES: int = Field(3, ge=0, le=10, description=(
        "Retries of one request to an OpenAI-compatible server (429, 5xx, timeouts, no connection) by the openai "
        "SDK, with backoff, before the next model takes over."))
    OPENAI_TIMEOUT_SECONDS: float = Field(300.0, gt=0, description=(
        "How long one answer of an OpenAI-compatible server may take (a local model writes slowly)."))
    MODEL_CONTEXT_WINDOWS: str = Field("", description=(
        "Context windows (tokens) of models the built-in table does not know: provider:model=tokens, "
        "comma-separated (e.g. ollama:qwen3-coder:30b=65536). Unknown models are taken to have 32768."))
    MODEL_PRICES: str = Field("", description=(
        "Prices of models the built-in table does not know, USD per million tokens: provider:model=input/output, "
        "comma-separated (e.g. openrouter:qwen/qwen3-coder=0.2/0.8). Local servers cost 0; others unknown."))

    # --- Redis ------------------------------------------------------------
    REDIS_URL: str | None = None
    REDIS_HOST: str = "localhost"
    REDIS_PORT: int = Field(6379, ge=1, le=65535)
    REDIS_DB: int = Field(0, ge=0)
    EMBEDDED_REDIS: bool = True
    DATA_DIR: Path | None = None  # unset: default_data_dir(), outside every repository

    # --- tasks ------------------------------------------------------------
    MAX_TASK_RUNTIME_MINUTES: float = Field(15, gt=0)
    MAX_TASK_ITERATIONS: int = Field(50, ge=1)
    COMMAND_TIMEOUT_SECONDS: float = Field(120, gt=0)
    ENABLE_DETAILED_UPDATES: bool = True
    PROJECTS_ROOT: Path = Path("~/tars_projects")
    DEFAULT_PROJECT_PATH: Path | None = None
    CONFIRMATION_TIMEOUT_SECONDS: float = Field(300, gt=0)
    CONFIRMATION_CODE: SecretStr | None = None
    AUTO_MERGE: bool = False
    PLAN_GOALS: Literal["never", "ask", "always"] = Field("never", description=(
        "never: every goal runs as one task (as before; one asked to be planned says why on its timeline). ask: a "
        "goal is planned into subtasks only when the caller asks for it (`task start --plan`). always: every goal "
        "is planned, unless the caller says not to (core/plans.py)."))
    PLAN_MAX_SUBTASKS: int = Field(8, ge=1, le=50, description=(
        "The most subtasks a plan may have; a longer plan is sent back to the model once, then the goal runs as "
        "one task."))
    PLAN_APPROVAL: Literal["off", "on"] = Field("off", description=(
        "off: a plan's subtasks start as soon as it is made (the plan is shown all the same). on: a planned task "
        "waits, holding no worker, until the owner approves its plan with CONFIRMATION_CODE (which must then be "
        "set); no code within CONFIRMATION_TIMEOUT_SECONDS ends it not approved."))
    PROJECT_VENV: str = Field("", description=(
        "The virtualenv every task's commands and test runs use (core/project_env.py): a path relative to the "
        "project (e.g. .venv-dev) or absolute. Empty: the project's own .venv or venv, else one made for the task "
        "with uv (pytest and the project's declared dependencies)."))
    SANDBOX: Literal["auto", "off"] = Field("auto", description=(
        "auto: every command the model runs is contained by the best OS sandbox this machine has (core/sandbox.py: "
        "Landlock, bubblewrap or sandbox-exec). off: commands run unconfined, as when none is available; then every "
        "command not on the allow-list asks for the owner's code (core/command_policy.py), the project's own code "
        "included."))
    SANDBOX_NETWORK: Literal["on", "off"] = Field("on", description=(
        "off: the sandbox cuts the model's commands off outbound TCP (no downloads, no pip install from PyPI, no "
        "remote services); on: they may connect anywhere."))
    COMMAND_RULES_FILE: Path | None = Field(None, description=(
        "The owner's command rules (JSON, Claude Code's permissions shape: Bash(...) allow and ask rules; see "
        "docs/SECURITY.md). Unset: DATA_DIR/commands.json; a missing file is no rules. It must lie outside "
        "PROJECTS_ROOT and the tasks' checkouts, where the model could rewrite it."))
    TASKS_FILE: Path | None = Field(None, description=(
        "The watched tasks file (YAML: a list of entries with goal, project and optional priority, plan, at; "
        "core/task_file.py): each entry is queued once, when it first appears. Unset: DATA_DIR/tasks.yaml; a missing "
        "file is no tasks. Like COMMAND_RULES_FILE it must lie outside PROJECTS_ROOT and the tasks' checkouts."))

    # --- automatic retries (core/retries.py) ------------------------------
    MAX_TASK_RETRIES: int = Field(2, ge=0, le=10, description=(
        "How many times a task ended by something transient (the model API unavailable after the SDK's retries, "
        "its worker died, Redis lost its record) is retried automatically, on its own branch from its last "
        "checkpoint; 0: never (`task retry` by hand still works). Never after a cancel, a limit or a refusal."))
    TASK_RETRY_BACKOFF_SECONDS: int = Field(60, ge=1, le=3600, description=(
        "The wait before the first automatic retry; it doubles with each attempt after (60: 1 min, then 2 min)."))
    # --- budgets and the report (core/budget.py, core/report.py) ----------
    MAX_TASK_COST_USD: float | None = Field(None, gt=0, description=(
        "A task whose estimated cost reaches this many dollars stops between two steps (failed, with the reason "
        "said; its work stays on its branch). Unset: no cap."))
    DAILY_BUDGET_USD: float | None = Field(None, ge=0, description=(
        "Once every task's spend on the owner's local day reaches this many dollars, new tasks are held (queued, "
        "not started) until the next day or until the owner raises it (`python main_tars.py budget set 20` "
        "overrides it without a restart). Unset: no daily budget."))
    HISTORY_DAYS: int = Field(90, ge=1, le=3650, description=(
        "Days a compact summary of every ended task is kept for the report (`python main_tars.py report`), long "
        "after the task's own data expired."))
    REPORT_DIGEST_CRON: str = Field("0 9 * * 1", description=(
        "When the digest of the tasks since the last one goes to Discord / n8n (a cron expression in the local "
        "time zone; the default: Mondays at 09:00). Empty: no digest."))

    @field_validator("REPORT_DIGEST_CRON")
    @classmethod
    def _cron(cls, value):
        # Its shape only: croniter (about 0.1 s to import) checks the rest where the digest is sent
        # (communication/digest.py), so the CLI and the workers never load it.
        value = " ".join(value.split())
        if value and not re.fullmatch(r"[\w*/,?#-]+( [\w*/,?#-]+){4}", value):
            raise ValueError(CRON_HINT)
        return value

    # --- progress updates and webhooks ------------------------------------
    N8N_WEBHOOK_URL: SecretStr | None = None
    DISCORD_WEBHOOK_URL: SecretStr | None = None
    WEBHOOK_SIGNING_SECRET: SecretStr | None = None
    WEBHOOK_SECRET: SecretStr | None = None

    # --- the Discord bot: codes and commands in a channel, progress edited in place ---
    DISCORD_BOT_TOKEN: SecretStr | None = None
    DISCORD_CHANNEL_ID: str | None = Field(None, description=(
        "The channel the bot reads the owner's replies in and posts progress to (its numeric id: Discord's "
        "Developer Mode, right-click the channel, Copy Channel ID)."))
    DISCORD_OWNER_IDS: str = Field("", description=(
        "The Discord user ids allowed to answer (comma-separated); everyone else is ignored."))
    DISCORD_API_URL: str = Field("https://discord.com/api/v10", description=(
        "Discord's REST base; the gateway address is asked from it (GET /gateway/bot). Tests point it at a local "
        "stand-in."))

    # --- voice (Twilio ConversationRelay) ---------------------------------
    PUBLIC_BASE_URL: str | None = None
    TWILIO_AUTH_TOKEN: SecretStr | None = None
    OWNER_PHONE_NUMBERS: str = ""
    CLAUDE_VOICE_MODEL: str = "claude-haiku-5-5"
    VOICE_LANGUAGE: str = "en-US"
    VOICE_TTS_PROVIDER: str | None = None
    VOICE_NAME: str | None = None
    VOICE_INTERRUPTIBLE: Literal["any", "speech", "dtmf", "none"] = "any"
    WELCOME_GREETING: str = "TARS here, sir. What shall we build?"
    VOICE_WEB_SEARCH: bool = Field(False, description=(
        "on: the voice brain may search the web (Anthropic's server-side web search tool) to answer questions about "
        "the weather, news or documentation during a call. Anthropic voice models only; billed by Anthropic per "
        "search."))
    CALL_HISTORY_DAYS: int = Field(30, ge=1, le=3650, description=(
        "How many days each call's transcript (both sides, codes and secrets redacted) is kept: `python main_tars.py "
        "calls` and the dashboard's Calls page."))

    # --- the phone both ways: TARS calls and texts the owner (Twilio's REST API) ---
    TWILIO_ACCOUNT_SID: str | None = Field(None, description=(
        "Your Twilio account's SID (AC + 32 hex characters, on the console's front page): TARS places calls and "
        "sends texts through Twilio's REST API with it."))
    TWILIO_API_KEY_SID: str | None = Field(None, description=(
        "Optional: an API key (SK + 32 hex characters) to call Twilio's REST API with instead of the auth token; "
        "set TWILIO_API_KEY_SECRET with it. Webhook signatures are still checked with TWILIO_AUTH_TOKEN."))
    TWILIO_API_KEY_SECRET: SecretStr | None = None
    TWILIO_PHONE_NUMBER: str | None = Field(None, description=(
        "Your Twilio number (E.164, +15551234567): TARS calls and texts the owner from it, and `doctor` checks its "
        "voice and SMS URLs."))
    TWILIO_API_BASE_URL: str = Field("https://api.twilio.com", description=(
        "Twilio's REST API base. Tests point it at a local stand-in."))
    CALL_OWNER_FOR_CONFIRMATIONS: bool = Field(False, description=(
        "on: a task that needs the confirmation code while the owner is on no call makes TARS call the first of "
        "OWNER_PHONE_NUMBERS (once per request); a missed call becomes a text. Needs TWILIO_ACCOUNT_SID, "
        "TWILIO_PHONE_NUMBER, PUBLIC_BASE_URL and Twilio credentials."))
    QUIET_HOURS: str = Field("", description=(
        "HH:MM-HH:MM local time (22:00-07:00): no call then; TARS texts instead. Empty: calls at any hour."))

    # --- server -----------------------------------------------------------
    DASHBOARD_PASSWORD: SecretStr | None = None
    HOST: str = "127.0.0.1"
    PORT: int = Field(8000, ge=1, le=65535)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- the worker pool of `python main_tars.py up` ----------------------
    WORKER_COUNT: int = Field(1, ge=1, description=(
        "How many workers `python main_tars.py up` runs and keeps running beside the server (`up --workers N` says "
        "it for one start); each runs one task at a time. At least 1."))

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @field_validator("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                     "OPENROUTER_API_KEY", "VLLM_API_KEY", "REDIS_URL", "DATA_DIR", "DEFAULT_PROJECT_PATH",
                     "COMMAND_RULES_FILE", "TASKS_FILE",
                     "CONFIRMATION_CODE", "DASHBOARD_PASSWORD", "N8N_WEBHOOK_URL", "DISCORD_WEBHOOK_URL", "WEBHOOK_SIGNING_SECRET",
                     "WEBHOOK_SECRET", "DISCORD_BOT_TOKEN", "DISCORD_CHANNEL_ID", "PUBLIC_BASE_URL", "TWILIO_AUTH_TOKEN", "VOICE_TTS_PROVIDER", "VOICE_NAME",
                     "TWILIO_ACCOUNT_SID", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "TWILIO_PHONE_NUMBER",
                     "MAX_TASK_COST_USD", "DAILY_BUDGET_USD",
                     mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_scheme(cls, value):
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("OPENAI_BASE_URL", "OPENROUTER_BASE_URL", "OLLAMA_BASE_URL", "LMSTUDIO_BASE_URL",
                     "VLLM_BASE_URL")
    @classmethod
    def _api_url(cls, value):
        return _base_url(value, "the http(s):// address of an OpenAI-compatible API, ending in /v1 (e.g. "
                                "http://localhost:11434/v1)")

    @field_validator("MODEL_CONTEXT_WINDOWS", "MODEL_PRICES")
    @classmethod
    def _per_model(cls, value, info):
        parse = providers.parse_windows if info.field_name == "MODEL_CONTEXT_WINDOWS" else providers.parse_prices
        parse(value, info.field_name)
        return value

    @field_validator("PUBLIC_BASE_URL")
    @classmethod
    def _public_url(cls, value):
        return _base_url(value, "the https:// address Twilio reaches this server at, e.g. https://tars.example.com")

    @field_validator("OWNER_PHONE_NUMBERS")
    @classmethod
    def _phone_numbers(cls, value):
        return _listed(value, r"\+[1-9]\d{6,14}", "an E.164 number like +15551234567")

    @field_validator("TWILIO_ACCOUNT_SID", "TWILIO_API_KEY_SID")
    @classmethod
    def _twilio_sid(cls, value, info):
        prefix = "AC" if info.field_name == "TWILIO_ACCOUNT_SID" else "SK"
        if value is not None and not re.fullmatch(prefix + r"[0-9a-fA-F]{32}", value.strip()):
            raise ValueError(f"must be {prefix} followed by 32 hex characters, as the Twilio console shows it")
        return value.strip() if value is not None else None

    @field_validator("TWILIO_PHONE_NUMBER")
    @classmethod
    def _twilio_number(cls, value):
        if value is not None and not re.fullmatch(r"\+[1-9]\d{6,14}", value.strip()):
            raise ValueError("must be an E.164 number like +15551234567")
        return value.strip() if value is not None else None

    @field_validator("TWILIO_API_BASE_URL")
    @classmethod
    def _twilio_api(cls, value):
        return _base_url(value, "the http(s):// base of Twilio's REST API (https://api.twilio.com)") or \
            "https://api.twilio.com"

    @field_validator("QUIET_HOURS")
    @classmethod
    def _quiet_hours(cls, value):
        try:
            schedules.parse_quiet_hours(value)
        except InvalidSchedule as exc:
            raise ValueError(str(exc).rstrip(".")) from None
        return value.strip()

    @field_validator("DISCORD_CHANNEL_ID")
    @classmethod
    def _channel_id(cls, value):
        if value is not None and not re.fullmatch(r"\d{15,21}", value.strip()):
            raise ValueError("must be the channel's numeric id (Developer Mode, right-click the channel, Copy "
                             "Channel ID), not its name or link")
        return value.strip() if value is not None else None

    @field_validator("DISCORD_OWNER_IDS")
    @classmethod
    def _owner_ids(cls, value):
        return _listed(value, r"\d{15,21}", "a Discord user id (a number like 80351110224678912: Developer Mode, "
                                            "right-click your name, Copy User ID)")

    @field_validator("DISCORD_API_URL")
    @classmethod
    def _discord_api(cls, value):
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL such as https://discord.com/api/v10")
        return value

    @field_validator("CONFIRMATION_CODE")
    @classmethod
    def _code_length(cls, value):
        if value is not None and len(value.get_secret_value().strip()) < 4:
            raise ValueError("must be at least 4 characters (digits are easiest to say and to type on a keypad)")
        return value

    @field_validator("N8N_WEBHOOK_URL", "DISCORD_WEBHOOK_URL")
    @classmethod
    def _http_url(cls, value):
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("WEBHOOK_SIGNING_SECRET")
    @classmethod
    def _signing_secret(cls, value):
        text = value.get_secret_value() if value is not None else ""
        if text.startswith("whsec_"):
            try:
                base64.b64decode(text.removeprefix("whsec_"), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("starts with whsec_ but the rest is not base64: use whsec_<base64> or any "
                                 "long random string") from None
        elif value is not None and len(text) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("DASHBOARD_PASSWORD")
    @classmethod
    def _dashboard_password(cls, value):
        if value is not None and len(value.get_secret_value().strip()) < 8:
            raise ValueError("must be at least 8 characters (the dashboard can start tasks and give codes)")
        return value

    @model_validator(mode="after")
    def _paths(self):
        if self.PLAN_APPROVAL == "on" and self.CONFIRMATION_CODE is None:
            raise ValueError("PLAN_APPROVAL=on needs CONFIRMATION_CODE: the owner approves a plan with that code; "
                             "set CONFIRMATION_CODE or PLAN_APPROVAL=off")
        self.PROJECTS_ROOT = self.PROJECTS_ROOT.expanduser().resolve()
        self.DATA_DIR = (self.DATA_DIR or default_data_dir()).expanduser().resolve()
        if self.DEFAULT_PROJECT_PATH is None:
            self.DEFAULT_PROJECT_PATH = self.PROJECTS_ROOT / "scratch"
        else:
            path = self.DEFAULT_PROJECT_PATH.expanduser()
            path = (path if path.is_absolute() else self.PROJECTS_ROOT / path).resolve()
            if not path.is_relative_to(self.PROJECTS_ROOT):
                raise ValueError(f"DEFAULT_PROJECT_PATH ({path}) must be inside PROJECTS_ROOT "
                                 f"({self.PROJECTS_ROOT}): move it there or change PROJECTS_ROOT")
            self.DEFAULT_PROJECT_PATH = path
        for variable in ("CODING_MODELS", "PLANNER_MODELS", "VOICE_MODELS"):
            if getattr(self, variable).strip():
                providers.parse_models(getattr(self, variable), variable)  # a bad entry stops the start, named
        self.COMMAND_RULES_FILE = self._owner_file("COMMAND_RULES_FILE", self.COMMAND_RULES_FILE, "commands.json")
        self.TASKS_FILE = self._owner_file("TASKS_FILE", self.TASKS_FILE, "tasks.yaml")
        if (self.TWILIO_API_KEY_SID is None) != (self.TWILIO_API_KEY_SECRET is None):
            raise ValueError("TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET go together: set both (an API key of your "
                             "Twilio account) or neither (the REST API then uses TWILIO_AUTH_TOKEN)")
        if self.CALL_OWNER_FOR_CONFIRMATIONS and self.phone_missing():
            raise ValueError("CALL_OWNER_FOR_CONFIRMATIONS=on needs " + ", ".join(self.phone_missing()) +
                             " (TARS calls you through Twilio's REST API): set them, or CALL_OWNER_FOR_CONFIRMATIONS=off")
        if self.DISCORD_BOT_TOKEN is not None and not (self.DISCORD_CHANNEL_ID and self.DISCORD_OWNER_IDS):
            raise ValueError("DISCORD_BOT_TOKEN is set, so the bot also needs DISCORD_CHANNEL_ID (where it listens) "
                             "and DISCORD_OWNER_IDS (who may answer): set both, or unset DISCORD_BOT_TOKEN")
        return self

    def _owner_file(self, setting: str, path: Path | None, default_name: str) -> Path:
        """A file only the owner writes (their command rules, their tasks): DATA_DIR/default_name when unset, relative
        to DATA_DIR, and never where a task's commands could rewrite it."""
        path = (path or self.DATA_DIR / default_name).expanduser()
        path = (path if path.is_absolute() else self.DATA_DIR / path).resolve()
        for folder, name in ((self.PROJECTS_ROOT, "PROJECTS_ROOT"), (self.checkouts_dir, "DATA_DIR/git")):
            if path.is_relative_to(folder):
                raise ValueError(f"{setting} ({path}) must be outside {name} ({folder}), where a task's commands "
                                 f"could rewrite it: keep it in DATA_DIR (the default, DATA_DIR/{default_name})")
        return path

    # --- derived ----------------------------------------------------------
    @property
    def redis_url(self) -> str:
        """REDIS_URL (or host/port/db); for a local Redis without a password, the embedded server's when it has one."""
        url = self.REDIS_URL or f"redis://{self.REDIS_HOST}:{self.REDIS_PORT}/{self.REDIS_DB}"
        return with_embedded_password(url, self.DATA_DIR)

    def models(self, role: str) -> list[providers.ModelSpec]:
        """The ordered models of a role (MODEL_ROLES): its list setting, else the shorthand it defaults to."""
        listed = {"coding": self.CODING_MODELS, "planner": self.PLANNER_MODELS or self.CODING_MODELS,
                  "voice": self.VOICE_MODELS}[role]
        if not listed.strip():
            listed = f"anthropic:{self.CLAUDE_VOICE_MODEL if role == 'voice' else self.CLAUDE_MODEL}"
        return providers.parse_models(listed, MODEL_ROLES[role])

    def context_window(self, spec: providers.ModelSpec) -> int:
        return providers.context_window(spec, providers.parse_windows(self.MODEL_CONTEXT_WINDOWS, ""))

    def price(self, spec: providers.ModelSpec) -> providers.Price | None:
        return providers.price_of(spec, providers.parse_prices(self.MODEL_PRICES, ""))

    @property
    def owner_numbers(self) -> list[str]:
        return [n for n in self.OWNER_PHONE_NUMBERS.split(",") if n]

    def phone_missing(self) -> list[str]:
        """The settings TARS still needs to call and text the owner (empty: it can)."""
        missing = [name for name in ("TWILIO_ACCOUNT_SID", "TWILIO_PHONE_NUMBER", "PUBLIC_BASE_URL")
                   if getattr(self, name) is None]
        if not self.owner_numbers:
            missing.append("OWNER_PHONE_NUMBERS")
        if self.TWILIO_AUTH_TOKEN is None and self.TWILIO_API_KEY_SID is None:
            missing.append("TWILIO_AUTH_TOKEN (or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET)")
        return missing

    @property
    def discord_owners(self) -> set[int]:
        return {int(i) for i in self.DISCORD_OWNER_IDS.split(",") if i}

    @property
    def checkouts_dir(self) -> Path:
        """Where tasks' worktrees, clone caches and shadow repositories live (core/git_workspace.py)."""
        return self.DATA_DIR / "git"

    @property
    def max_runtime_seconds(self) -> float:
        return self.MAX_TASK_RUNTIME_MINUTES * 60

    def detailed_updates(self, task_choice: bool | None) -> bool:
        """Whether a task's progress updates are detailed: its own choice (verbose_updates), else the setting."""
        return self.ENABLE_DETAILED_UPDATES if task_choice is None else bool(task_choice)

    def secret_values(self) -> list[str]:
        """Values that must never leave the process (scrubbed from text we send out)."""
        values = [self.secret(name) for name in sorted(SECRET_FIELDS)]
        return [v for v in values if v and len(v) >= 4]

    def secret(self, name: str) -> str | None:
        """The plain value of a SecretStr setting (None when unset)."""
        value = getattr(self, name)
        return value.get_secret_value().strip() if value is not None else None


MODEL_ROLES = {"coding": "CODING_MODELS", "planner": "PLANNER_MODELS", "voice": "VOICE_MODELS"}
"""The model lists by role: who runs tasks, who plans them, who talks on the phone."""

SECRET_FIELDS = {name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}


def env_file() -> Path | None:
    """The env file TARS reads (TARS_ENV_FILE, else .env in the current directory) as an absolute path, when it is a
    regular file: what the sandbox keeps the model's commands from reading (None: /dev/null, missing, unset)."""
    name = os.environ.get("TARS_ENV_FILE", ".env")
    path = Path(name).expanduser().absolute() if name else None
    return path if path is not None and path.is_file() else None


def load_settings(**overrides) -> Settings:
    """Build and validate Settings, turning pydantic's errors into one readable ConfigError."""
    env_file = os.environ.get("TARS_ENV_FILE", ".env")
    try:
        return Settings(_env_file=env_file or None, **overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            given = err.get("input")
            if not name:  # a check across fields: its message names the variable itself
                lines.append(err["msg"].removeprefix("Value error, "))
                continue
            hidden = name in SECRET_FIELDS or isinstance(given, dict)
            shown = "" if hidden else f"={safe_url(given) if name == 'REDIS_URL' else given!r}"
            lines.append(f"{name}{shown} is invalid: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("; ".join(lines) + ". Fix it in .env or the environment (see env.example).") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def setting_names() -> list[str]:
    """Names of every TARS setting: never passed to commands the model runs."""
    return list(Settings.model_fields)


# --- names in .env that are not settings ---------------------------------------------------------------------------
# The original TARS's documents (docs/BACKGROUND_*.md, AUTONOMOUS_PROGRAMMING_SUMMARY.md, N8N_BACKGROUND_TASKS_SETUP.md
# and their env.example) named settings this TARS does not read: each with the setting that replaces it (None: no
# setting does that now) and why. An owner coming from there is told at start-up (docs/COMING_FROM_THE_ORIGINAL_TARS.md
# shows the same table).
RENAMED_SETTINGS: dict[str, tuple[str | None, str]] = {
    "DISCORD_UPDATES_WEBHOOK": ("N8N_WEBHOOK_URL", "updates go to your n8n webhook (or set DISCORD_WEBHOOK_URL to a "
                                                   "Discord channel's own webhook)"),
    "N8N_TARS_WEBHOOK_URL": ("PUBLIC_BASE_URL", "n8n sends codes to PUBLIC_BASE_URL/webhook/background-confirmation, "
                                                "with WEBHOOK_SECRET in X-TARS-Webhook-Secret"),
    "CLAUDE_COMPLEX_MODEL": ("CODING_MODELS", "the models that run tasks, in order, with fallback"),
    "CLAUDE_FAST_MODEL": ("VOICE_MODELS", "the models of the phone conversation, in order, with fallback"),
    "PROGRAMMING_MODEL": ("CLAUDE_MODEL", "a model id such as claude-sonnet-5-5, not opus or sonnet"),
    "MAX_COMMAND_TIMEOUT": ("COMMAND_TIMEOUT_SECONDS", "seconds, as before"),
    "AUTO_PUSH_ON_COMPLETE": ("AUTO_MERGE", "a task that ends complete with passing tests is merged into the branch "
                                            "it started from; a git-URL task is pushed"),
    "AUTO_GIT_COMMIT": (None, "every step is committed as a checkpoint on the task's own branch tars/<id>, always"),
    "AUTO_COMMIT_PER_STEP": (None, "every step is committed as a checkpoint on the task's own branch tars/<id>, "
                                   "always"),
    "COMMIT_MESSAGE_PREFIX": (None, "checkpoints are named tars(<id>): <step>"),
    "MAX_BACKGROUND_TASKS": ("WORKER_COUNT", "a worker runs one task at a time: main_tars.py up runs WORKER_COUNT of "
                                   "them (or start more: python start_worker.py)"),
    "WORKER_POOL_SIZE": ("WORKER_COUNT", "a worker runs one task at a time: main_tars.py up runs WORKER_COUNT of "
                                   "them (or start more: python start_worker.py)"),
    "TARGET_PHONE_NUMBER": ("OWNER_PHONE_NUMBERS", "E.164 numbers, comma-separated: only they may call"),
    "ALLOW_UNKNOWN_CALLERS": (None, "only OWNER_PHONE_NUMBERS may call; anyone else hears one sentence"),
    "WEBHOOK_BASE_URL": ("PUBLIC_BASE_URL", "the https:// address Twilio (and n8n) reach TARS at"),
    "WEBSOCKET_URL": ("PUBLIC_BASE_URL", "the voice relay is wss://<that host>/relay on the same server"),
    "WEBHOOK_PORT": ("PORT", "one server serves the webhooks, the voice relay and the dashboard"),
    "WEBSOCKET_PORT": ("PORT", "one server serves the webhooks, the voice relay and the dashboard"),
    "GEMINI_API_KEY": ("VOICE_MODELS", "the phone conversation's models are a list of provider:model (Anthropic "
                                       "or any OpenAI-compatible server, e.g. OpenRouter for Gemini)"),
    "GEMINI_MODEL": ("VOICE_MODELS", "the phone conversation's models are a list of provider:model"),
    "GEMINI_VOICE": ("VOICE_NAME", "Twilio's text-to-speech speaks; VOICE_TTS_PROVIDER picks the provider"),
    "REDIS_PASSWORD": ("REDIS_URL", "put the password in the URL: redis://:password@host:6379/0"),
}

# A name in .env with one of these prefixes is meant for TARS: one that is no setting is a typo or an old name.
TARS_PREFIXES = ("TARS_", "ANTHROPIC_", "CLAUDE_", "OPENAI_", "OLLAMA_", "OPENROUTER_", "REDIS_", "N8N_", "DISCORD_",
                 "WEBHOOK_", "TWILIO_", "VOICE_", "DASHBOARD_", "CONFIRMATION_", "MAX_TASK_")

log = logging.getLogger("tars.config")


def env_file_warnings(env_file: str | os.PathLike | None = None) -> list[str]:
    """Sentences about names in the env file that TARS ignores but an owner meant for it: a name of the original
    TARS (with the setting that replaces it), a TARS-looking name that is no setting or a name close to a setting
    (with the nearest one), a setting in lower case. Names of other programs sharing the file are left alone."""
    path = env_file if env_file is not None else os.environ.get("TARS_ENV_FILE", ".env")
    if not path or not os.path.isfile(path):
        return []
    names = setting_names()
    warnings = []
    for name in dotenv_values(path):
        if name in Settings.model_fields:
            continue
        where = f"{name} in {path}"
        if name in RENAMED_SETTINGS:
            replacement, why = RENAMED_SETTINGS[name]
            use = f"use {replacement}: {why}" if replacement else why
            warnings.append(f"{where} is a setting of the original TARS and is ignored here; {use}.")
        elif name == "TARS_ENV_FILE":
            warnings.append(f"{where} has no effect: TARS_ENV_FILE is read from the environment only.")
        elif name.upper() in Settings.model_fields:
            warnings.append(f"{where} is ignored: setting names are upper case, {name.upper()}.")
        else:
            prefixed = name.upper().startswith(TARS_PREFIXES)  # else only a near miss: other programs share .env
            close = difflib.get_close_matches(name.upper(), names, n=1, cutoff=0.75 if prefixed else 0.85)
            if close:
                warnings.append(f"{where} is not a TARS setting and is ignored; did you mean {close[0]}?")
            elif prefixed:
                warnings.append(f"{where} is not a TARS setting and is ignored (env.example lists them all).")
    return warnings


def warn_about_env_file(env_file: str | os.PathLike | None = None) -> list[str]:
    """Log env_file_warnings() at start-up (main_tars.py, start_worker.py); returns them."""
    warnings = env_file_warnings(env_file)
    for warning in warnings:
        log.warning("%s", warning)
    return warnings
