"""Settings as an owner meets them: the defaults, a .env file, and one readable error for a bad value."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from anthropic._data import DEPRECATED_MODELS

from core.config import RENAMED_SETTINGS, Settings, env_file_warnings, load_settings, setting_names
from core.exceptions import ConfigError

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET_KEY = "sk-ant-api03-do-not-print-me-0123456789"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No TARS setting in the environment, no .env file: what a fresh install sees."""
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TARS_ENV_FILE", "/dev/null")
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def config_error(**env: str) -> str:
    """The ConfigError message load_settings() gives for these environment values."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        with pytest.raises(ConfigError) as raised:
            load_settings()
    return str(raised.value)


# --- defaults -----------------------------------------------------------------------------------------

def test_defaults_of_a_fresh_install(clean_env):
    settings = load_settings()
    assert settings.CLAUDE_MODEL == "claude-sonnet-5-5"
    assert settings.MAX_TASK_RUNTIME_MINUTES == 15
    assert settings.max_runtime_seconds == 15 * 60
    assert settings.MAX_TASK_ITERATIONS == 50
    assert settings.HOST == "127.0.0.1"
    assert settings.PORT == 8000
    assert settings.ENABLE_DETAILED_UPDATES is True
    assert settings.ANTHROPIC_API_KEY is None
    assert settings.LOG_LEVEL == "INFO"
    assert settings.PROJECTS_ROOT == (Path.home() / "tars_projects").resolve()
    assert settings.DEFAULT_PROJECT_PATH == settings.PROJECTS_ROOT / "scratch"


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG rule is Linux's; platformdirs keeps the others")
def test_data_dir_defaults_to_the_per_user_data_folder_outside_tars(clean_env, tmp_path):
    clean_env.setenv("HOME", str(tmp_path / "home"))
    clean_env.delenv("XDG_DATA_HOME", raising=False)
    assert load_settings().DATA_DIR == tmp_path / "home" / ".local" / "share" / "tars"
    clean_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    settings = load_settings()
    assert settings.DATA_DIR == tmp_path / "xdg" / "tars"
    assert settings.checkouts_dir == tmp_path / "xdg" / "tars" / "git"
    assert not settings.DATA_DIR.is_relative_to(ROOT)  # no task's worktree inside TARS's repository
    clean_env.setenv("DATA_DIR", "  ")  # blank, as env.example leaves it: the default
    assert load_settings().DATA_DIR == tmp_path / "xdg" / "tars"
    clean_env.setenv("DATA_DIR", "~/tars-data")
    assert load_settings().DATA_DIR == tmp_path / "home" / "tars-data"


def test_default_model_is_not_deprecated_by_the_sdk(clean_env):
    model = load_settings().CLAUDE_MODEL
    assert model not in DEPRECATED_MODELS, f"{model} reaches end-of-life on {DEPRECATED_MODELS.get(model)}"


def test_loading_settings_creates_no_folders(clean_env, tmp_path):
    clean_env.setenv("PROJECTS_ROOT", str(tmp_path / "not-yet"))
    settings = load_settings()
    assert settings.PROJECTS_ROOT == tmp_path / "not-yet"
    assert not (tmp_path / "not-yet").exists()


# --- Redis location -------------------------------------------------------------------------------------

def test_redis_defaults_to_localhost(clean_env):
    assert load_settings().redis_url == "redis://localhost:6379/0"


def test_redis_host_port_and_db_build_the_url(clean_env):
    clean_env.setenv("REDIS_HOST", "redis.internal")
    clean_env.setenv("REDIS_PORT", "6380")
    clean_env.setenv("REDIS_DB", "3")
    assert load_settings().redis_url == "redis://redis.internal:6380/3"


def test_redis_url_wins_over_host_and_port(clean_env):
    clean_env.setenv("REDIS_URL", "redis://:pw@cache.example:7000/5")
    clean_env.setenv("REDIS_HOST", "ignored.example")
    clean_env.setenv("REDIS_PORT", "1234")
    assert load_settings().redis_url == "redis://:pw@cache.example:7000/5"


def test_blank_redis_url_means_host_and_port(clean_env):
    clean_env.setenv("REDIS_URL", "  ")
    clean_env.setenv("REDIS_PORT", "6390")
    settings = load_settings()
    assert settings.REDIS_URL is None
    assert settings.redis_url == "redis://localhost:6390/0"


@pytest.mark.parametrize("url", ["rediss://secure.example:6380/0", "unix:///run/redis.sock"])
def test_tls_and_unix_socket_urls_are_accepted(clean_env, url):
    clean_env.setenv("REDIS_URL", url)
    assert load_settings().redis_url == url


# --- invalid values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,value", [
    ("MAX_TASK_ITERATIONS", "abc"),
    ("MAX_TASK_ITERATIONS", "0"),
    ("PORT", "70000"),
    ("REDIS_PORT", "0"),
    ("REDIS_URL", "http://x"),
    ("MAX_TASK_RUNTIME_MINUTES", "-1"),
    ("ENABLE_DETAILED_UPDATES", "maybe"),
    ("LOG_LEVEL", "LOUD"),
    ("MAX_TASK_COST_USD", "0"),
    ("DAILY_BUDGET_USD", "-5"),
    ("HISTORY_DAYS", "0"),
    ("REPORT_DIGEST_CRON", "every monday"),
])
def test_an_invalid_value_names_the_variable_and_where_to_fix_it(clean_env, name, value):
    message = config_error(**{name: value})
    assert message.startswith(f"{name}=")
    assert value in message
    assert "Fix it in .env or the environment (see env.example)." in message
    assert "\n" not in message


def test_redis_url_error_says_which_schemes_work(clean_env):
    assert "must start with redis://, rediss:// or unix://" in config_error(REDIS_URL="http://x")


@pytest.mark.parametrize("default_project", ["absolute", "../elsewhere"])
def test_default_project_outside_the_projects_root_is_a_config_error(clean_env, tmp_path, default_project):
    root = tmp_path / "projects"
    value = str(tmp_path / "elsewhere") if default_project == "absolute" else default_project
    message = config_error(PROJECTS_ROOT=str(root), DEFAULT_PROJECT_PATH=value)
    assert "DEFAULT_PROJECT_PATH" in message
    assert f"must be inside PROJECTS_ROOT ({root})" in message
    assert "Fix it in .env or the environment" in message
    assert "\n" not in message


def test_default_project_inside_the_root_may_be_relative(clean_env, tmp_path):
    clean_env.setenv("PROJECTS_ROOT", str(tmp_path / "projects"))
    clean_env.setenv("DEFAULT_PROJECT_PATH", "main-app")
    assert load_settings().DEFAULT_PROJECT_PATH == tmp_path / "projects" / "main-app"


def test_sandbox_settings_and_the_rules_file_default_to_data_dir(clean_env, tmp_path):
    clean_env.setenv("DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    assert (settings.SANDBOX, settings.SANDBOX_NETWORK) == ("auto", "on")
    assert settings.COMMAND_RULES_FILE == tmp_path / "data" / "commands.json"
    assert settings.TASKS_FILE == tmp_path / "data" / "tasks.yaml"
    clean_env.setenv("COMMAND_RULES_FILE", "rules/mine.json")  # relative: to DATA_DIR
    clean_env.setenv("TASKS_FILE", str(tmp_path / "elsewhere" / "todo.yaml"))
    clean_env.setenv("SANDBOX_NETWORK", "off")
    settings = load_settings()
    assert settings.COMMAND_RULES_FILE == tmp_path / "data" / "rules" / "mine.json"
    assert settings.TASKS_FILE == tmp_path / "elsewhere" / "todo.yaml"
    assert settings.SANDBOX_NETWORK == "off"
    assert "SANDBOX_NETWORK='none' is invalid" in config_error(SANDBOX_NETWORK="none")


@pytest.mark.parametrize("setting", ["COMMAND_RULES_FILE", "TASKS_FILE"])
@pytest.mark.parametrize("place", ["projects/app/commands.json", "data/git/worktrees/t1/commands.json"])
def test_a_rules_or_tasks_file_a_task_could_rewrite_is_a_config_error(clean_env, tmp_path, place, setting):
    clean_env.setenv("PROJECTS_ROOT", str(tmp_path / "projects"))
    clean_env.setenv("DATA_DIR", str(tmp_path / "data"))
    message = config_error(**{setting: str(tmp_path / place)})
    assert f"{setting} ({tmp_path / place}) must be outside" in message and "\n" not in message


# --- the Discord bot -------------------------------------------------------------------------------------
CHANNEL, OWNER, BOT_TOKEN = "1234567890123456789", "80351110224678912", "MTA4.bot-token-do-not-print.me"


def test_the_discord_bot_settings_as_an_owner_writes_them(clean_env):
    settings = load_settings(DISCORD_BOT_TOKEN=BOT_TOKEN, DISCORD_CHANNEL_ID=f" {CHANNEL} ",
                             DISCORD_OWNER_IDS=f"{OWNER}; 111111111111111111 ,",
                             DISCORD_API_URL="http://127.0.0.1:9/api/")
    assert settings.DISCORD_CHANNEL_ID == CHANNEL
    assert settings.discord_owners == {80351110224678912, 111111111111111111}
    assert settings.DISCORD_API_URL == "http://127.0.0.1:9/api"
    assert settings.secret("DISCORD_BOT_TOKEN") == BOT_TOKEN and BOT_TOKEN not in repr(settings)
    fresh = load_settings()
    assert (fresh.DISCORD_BOT_TOKEN, fresh.DISCORD_CHANNEL_ID, fresh.discord_owners) == (None, None, set())
    assert fresh.DISCORD_API_URL == "https://discord.com/api/v10"


@pytest.mark.parametrize("channel", ["general", "#general", f"https://discord.com/channels/{OWNER}/{CHANNEL}", "12345"])
def test_a_discord_channel_that_is_not_its_numeric_id_is_a_config_error(clean_env, channel):
    message = config_error(DISCORD_CHANNEL_ID=channel)
    assert message.startswith(f"DISCORD_CHANNEL_ID={channel!r} is invalid: must be the channel's numeric id")
    assert "Copy Channel ID" in message and "\n" not in message


@pytest.mark.parametrize("owners,bad", [("@tars-owner", "@tars-owner"), (f"{OWNER}, someone#1234", "someone#1234"),
                                        ("<@80351110224678912>", "<@80351110224678912>")])
def test_a_discord_owner_that_is_not_a_user_id_is_a_config_error(clean_env, owners, bad):
    message = config_error(DISCORD_OWNER_IDS=owners)
    assert f"{bad} is not a Discord user id" in message and "Copy User ID" in message


@pytest.mark.parametrize("missing", [{}, {"DISCORD_CHANNEL_ID": CHANNEL}, {"DISCORD_OWNER_IDS": OWNER}])
def test_a_bot_token_without_its_channel_and_owners_is_a_config_error_naming_both(clean_env, missing):
    message = config_error(DISCORD_BOT_TOKEN=BOT_TOKEN, **missing)
    assert "DISCORD_BOT_TOKEN is set, so the bot also needs DISCORD_CHANNEL_ID (where it listens) and " \
           "DISCORD_OWNER_IDS (who may answer): set both, or unset DISCORD_BOT_TOKEN" in message
    assert BOT_TOKEN not in message


def test_a_discord_api_url_without_its_scheme_is_a_config_error(clean_env):
    assert "DISCORD_API_URL='discord.com/api/v10' is invalid: must be an http(s):// URL" in \
        config_error(DISCORD_API_URL="discord.com/api/v10")


def test_plan_approval_without_a_confirmation_code_is_a_config_error_naming_both(clean_env):
    message = config_error(PLAN_APPROVAL="on")
    assert "PLAN_APPROVAL=on needs CONFIRMATION_CODE" in message and "PLAN_APPROVAL=off" in message
    assert "PLAN_APPROVAL='maybe' is invalid" in config_error(PLAN_APPROVAL="maybe", CONFIRMATION_CODE="1234")


def test_env_file_is_the_file_tars_reads_when_it_is_one(clean_env, tmp_path):
    from core.config import env_file

    assert env_file() is None  # /dev/null
    clean_env.delenv("TARS_ENV_FILE")
    assert env_file() is None  # no .env here
    (tmp_path / ".env").write_text("PORT=8123\n")
    assert env_file() == tmp_path / ".env"
    clean_env.setenv("TARS_ENV_FILE", str(tmp_path / "tars.env"))
    assert env_file() is None
    (tmp_path / "tars.env").write_text("PORT=8123\n")
    assert env_file() == tmp_path / "tars.env"


def test_several_bad_values_are_reported_together(clean_env):
    message = config_error(PORT="70000", MAX_TASK_ITERATIONS="abc")
    assert "PORT='70000'" in message and "MAX_TASK_ITERATIONS='abc'" in message


def test_the_api_key_never_appears_in_a_config_error(clean_env, tmp_path):
    clean_env.setenv("ANTHROPIC_API_KEY", SECRET_KEY)
    for bad in ({"PORT": "70000"}, {"REDIS_URL": "http://x"}, {"MAX_TASK_ITERATIONS": "abc", "LOG_LEVEL": "x"},
                {"PROJECTS_ROOT": str(tmp_path / "p"), "DEFAULT_PROJECT_PATH": "/etc"}):
        assert SECRET_KEY not in config_error(**bad)
    with pytest.raises(ConfigError) as raised:
        load_settings(ANTHROPIC_API_KEY=12345678901234)  # a key of the wrong type is still not shown
    assert "ANTHROPIC_API_KEY" in str(raised.value) and "12345678901234" not in str(raised.value)


def test_the_api_key_is_hidden_when_settings_are_printed(clean_env):
    clean_env.setenv("ANTHROPIC_API_KEY", SECRET_KEY)
    settings = load_settings()
    assert settings.ANTHROPIC_API_KEY.get_secret_value() == SECRET_KEY
    assert SECRET_KEY not in repr(settings) and SECRET_KEY not in str(settings)
    assert settings.secret_values() == [SECRET_KEY]


def test_blank_api_key_is_unset(clean_env):
    clean_env.setenv("ANTHROPIC_API_KEY", "")
    assert load_settings().ANTHROPIC_API_KEY is None


# --- the .env file ------------------------------------------------------------------------------------------

def test_env_file_named_by_tars_env_file_is_read(clean_env, tmp_path):
    env_file = tmp_path / "tars.env"
    env_file.write_text("# my TARS\nMAX_TASK_ITERATIONS=7\nCLAUDE_MODEL=claude-opus-4-7\n"
                        f"ANTHROPIC_API_KEY={SECRET_KEY}\nENABLE_DETAILED_UPDATES=false\n")
    clean_env.setenv("TARS_ENV_FILE", str(env_file))
    settings = load_settings()
    assert settings.MAX_TASK_ITERATIONS == 7
    assert settings.CLAUDE_MODEL == "claude-opus-4-7"
    assert settings.ANTHROPIC_API_KEY.get_secret_value() == SECRET_KEY
    assert settings.ENABLE_DETAILED_UPDATES is False


def test_the_environment_wins_over_the_env_file(clean_env, tmp_path):
    env_file = tmp_path / "tars.env"
    env_file.write_text("MAX_TASK_ITERATIONS=7\nPORT=9000\n")
    clean_env.setenv("TARS_ENV_FILE", str(env_file))
    clean_env.setenv("MAX_TASK_ITERATIONS", "12")
    settings = load_settings()
    assert settings.MAX_TASK_ITERATIONS == 12
    assert settings.PORT == 9000


def test_dot_env_in_the_current_folder_is_read_by_default(clean_env, tmp_path):
    clean_env.delenv("TARS_ENV_FILE")
    (tmp_path / ".env").write_text("PORT=8123\n")
    assert load_settings().PORT == 8123


def test_a_bad_value_in_the_env_file_is_a_config_error(clean_env, tmp_path):
    env_file = tmp_path / "tars.env"
    env_file.write_text("PORT=70000\n")
    clean_env.setenv("TARS_ENV_FILE", str(env_file))
    assert config_error().startswith("PORT='70000' is invalid")


# --- env.example ----------------------------------------------------------------------------------------------

def test_env_example_lists_exactly_the_settings():
    example = ROOT / "env.example"
    assert example.is_file(), f"{example} is missing: every setting must be documented there"
    listed = re.findall(r"^[ \t]*#?[ \t]*([A-Z][A-Z0-9_]*)=", example.read_text(), flags=re.MULTILINE)
    assert len(listed) == len(set(listed)), f"listed twice: {sorted(n for n in listed if listed.count(n) > 1)}"
    assert set(listed) == set(Settings.model_fields)


def test_env_example_copied_as_dot_env_gives_the_defaults(clean_env):
    defaults = load_settings().model_dump()
    clean_env.setenv("TARS_ENV_FILE", str(ROOT / "env.example"))
    assert load_settings().model_dump() == defaults


# --- names in .env that TARS does not read --------------------------------------------------------------------

def test_the_original_tars_names_are_told_with_their_replacement(clean_env, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_UPDATES_WEBHOOK=https://n8n.example.com/webhook/discord-updates\n"
                        "CLAUDE_COMPLEX_MODEL=claude-opus-4-7\nAUTO_COMMIT_PER_STEP=true\nMAX_TASK_ITERATIONS=7\n")
    clean_env.setenv("TARS_ENV_FILE", str(env_file))
    warnings = env_file_warnings()
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith(f"DISCORD_UPDATES_WEBHOOK in {env_file} is a setting of the original TARS and is "
                                  "ignored here; use N8N_WEBHOOK_URL: ")
    assert "use CODING_MODELS" in warnings[1]
    assert warnings[2].startswith("AUTO_COMMIT_PER_STEP in") and "checkpoint" in warnings[2]
    assert "opus" not in " ".join(warnings) and "n8n.example.com" not in " ".join(warnings)  # names, never values


def test_tars_looking_names_that_are_no_setting_get_the_nearest_one(clean_env, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DASHBOARD_PASWORD=a-long-passphrase\nCONFIRMATON_CODE=6283\nexport CLAUDE_MODLE=x\n"
                        "REDIS_SOMETHING=1\nmax_task_iterations=3\nPORTS=9000\n"
                        "NODE_ENV=production\nDATABASE_URL=postgres://x\nGITHUB_TOKEN=abc\nPORT=8001\n")
    warnings = env_file_warnings(env_file)
    said = {w.split(" ")[0]: w for w in warnings}
    assert set(said) == {"DASHBOARD_PASWORD", "CONFIRMATON_CODE", "CLAUDE_MODLE", "REDIS_SOMETHING",
                         "max_task_iterations", "PORTS"}, warnings  # another program's names are left alone
    assert said["DASHBOARD_PASWORD"].endswith("is not a TARS setting and is ignored; did you mean DASHBOARD_PASSWORD?")
    assert said["CONFIRMATON_CODE"].endswith("did you mean CONFIRMATION_CODE?")
    assert said["CLAUDE_MODLE"].endswith("did you mean CLAUDE_MODEL?")
    assert said["PORTS"].endswith("did you mean PORT?")
    assert said["REDIS_SOMETHING"].endswith("is not a TARS setting and is ignored (env.example lists them all).")
    assert said["max_task_iterations"].endswith("is ignored: setting names are upper case, MAX_TASK_ITERATIONS.")
    assert "a-long-passphrase" not in " ".join(warnings)


def test_no_env_file_or_only_settings_means_no_warnings(clean_env, tmp_path):
    assert env_file_warnings(tmp_path / "missing.env") == []
    assert env_file_warnings(ROOT / "env.example") == []
    assert env_file_warnings() == []  # TARS_ENV_FILE=/dev/null


def test_every_renamed_setting_names_a_real_replacement():
    for old, (new, why) in RENAMED_SETTINGS.items():
        assert old not in Settings.model_fields, old
        assert new is None or new in Settings.model_fields, (old, new)
        assert why and not why.endswith("."), old


def test_a_worker_started_by_hand_warns_about_the_env_file(tars_env, start_worker, tmp_path):
    env_file = tmp_path / "tars.env"
    env_file.write_text("MAX_COMMAND_TIMEOUT=60\n")
    worker = start_worker("--burst", TARS_ENV_FILE=str(env_file))
    assert worker.wait(60) == 0, worker.log
    assert "MAX_COMMAND_TIMEOUT in" in worker.log and "use COMMAND_TIMEOUT_SECONDS: seconds, as before." in worker.log


# --- the phone both ways: Twilio's REST API, calls to the owner, quiet hours ---------------------------------------
TWILIO = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "a-twilio-auth-token",
          "TWILIO_PHONE_NUMBER": "+15550001111", "PUBLIC_BASE_URL": "https://tars.example.com",
          "OWNER_PHONE_NUMBERS": "+15551234567"}


def test_calling_the_owner_names_every_setting_it_still_needs(clean_env):
    message = config_error(CALL_OWNER_FOR_CONFIRMATIONS="on", TWILIO_ACCOUNT_SID="AC" + "1" * 32)
    assert ("CALL_OWNER_FOR_CONFIRMATIONS=on needs TWILIO_PHONE_NUMBER, PUBLIC_BASE_URL, OWNER_PHONE_NUMBERS, "
            "TWILIO_AUTH_TOKEN (or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET)") in message
    for name, value in TWILIO.items():
        clean_env.setenv(name, value)
    clean_env.setenv("CALL_OWNER_FOR_CONFIRMATIONS", "on")
    settings = load_settings()
    assert settings.CALL_OWNER_FOR_CONFIRMATIONS is True and settings.phone_missing() == []


def test_an_api_key_pair_stands_in_for_the_auth_token_but_only_as_a_pair(clean_env):
    assert "TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET go together" in config_error(
        TWILIO_API_KEY_SID="SK" + "2" * 32)
    for name, value in TWILIO.items():
        clean_env.setenv(name, value)
    clean_env.delenv("TWILIO_AUTH_TOKEN")
    clean_env.setenv("TWILIO_API_KEY_SID", "SK" + "2" * 32)
    clean_env.setenv("TWILIO_API_KEY_SECRET", "an-api-key-secret")
    assert load_settings().phone_missing() == []


@pytest.mark.parametrize("name, value, rule", [
    ("TWILIO_ACCOUNT_SID", "SK" + "1" * 32, "must be AC followed by 32 hex characters"),
    ("TWILIO_API_KEY_SID", "AC" + "1" * 32, "must be SK followed by 32 hex characters"),
    ("TWILIO_PHONE_NUMBER", "555-0100", "must be an E.164 number"),
    ("TWILIO_API_BASE_URL", "api.twilio.com", "http(s)://"),
    ("QUIET_HOURS", "10pm-7am", "give HH:MM-HH:MM on the 24-hour clock"),
    ("QUIET_HOURS", "22:00-22:00", "give HH:MM-HH:MM on the 24-hour clock"),
    ("CALL_HISTORY_DAYS", "0", "greater than or equal to 1"),
])
def test_bad_phone_settings_are_named_with_their_rule(clean_env, name, value, rule):
    message = config_error(**{name: value})
    assert message.startswith(f"{name}=") and rule in message


def test_the_phone_settings_default_to_off(clean_env):
    settings = load_settings()
    assert (settings.CALL_OWNER_FOR_CONFIRMATIONS, settings.VOICE_WEB_SEARCH, settings.QUIET_HOURS,
            settings.CALL_HISTORY_DAYS, settings.TWILIO_API_BASE_URL) == (False, False, "", 30,
                                                                          "https://api.twilio.com")
