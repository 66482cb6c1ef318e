import pytest

import appconfig
from appconfig import ConfigError, load


def ini(tmp_path, text):
    path = tmp_path / "app.ini"
    path.write_text(text)
    return path


def test_environment_overrides_the_default():
    settings = load(environ={"APP_SERVER_PORT": "9000"})
    assert settings["server"]["port"] == 9000
    assert settings["server"]["host"] == "127.0.0.1"


def test_environment_overrides_the_file(tmp_path):
    path = ini(tmp_path, "[server]\nport = 9000\nhost = 0.0.0.0\n")
    settings = load(path, environ={"APP_SERVER_PORT": "9100"})
    assert settings["server"]["port"] == 9100
    assert settings["server"]["host"] == "0.0.0.0"


def test_keys_with_underscores():
    settings = load(environ={"APP_CACHE_TTL_SECONDS": "60", "APP_CACHE_MAX_ITEMS": "5"})
    assert settings["cache"]["ttl_seconds"] == 60.0
    assert isinstance(settings["cache"]["ttl_seconds"], float)
    assert settings["cache"]["max_items"] == 5


@pytest.mark.parametrize("text, value", [("yes", True), ("ON", True), ("0", False), ("false", False)])
def test_booleans_convert_as_in_the_file(text, value):
    assert load(environ={"APP_SERVER_DEBUG": text})["server"]["debug"] is value


def test_strings_are_kept():
    assert load(environ={"APP_CACHE_BACKEND": "redis"})["cache"]["backend"] == "redis"


@pytest.mark.parametrize("name, text", [("APP_SERVER_PORT", "eighty"), ("APP_SERVER_DEBUG", "maybe"),
                                        ("APP_CACHE_TTL_SECONDS", "soon")])
def test_a_bad_value_names_the_variable(name, text):
    with pytest.raises(ConfigError, match=name):
        load(environ={name: text})


def test_unknown_app_variables_are_ignored():
    settings = load(environ={"APP_SERVER_COLOR": "blue", "APP_NOTHING": "1", "APP_": "x", "HOME": "/tmp"})
    assert settings == load(environ={})


def test_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("APP_SERVER_PORT", "7000")
    assert load()["server"]["port"] == 7000


def test_an_explicit_environ_replaces_os_environ(monkeypatch):
    monkeypatch.setenv("APP_SERVER_PORT", "7000")
    assert load(environ={})["server"]["port"] == 8080


def test_file_errors_still_raise(tmp_path):
    with pytest.raises(ConfigError):
        load(ini(tmp_path, "[nope]\nx = 1\n"), environ={})


def test_defaults_are_not_changed():
    load(environ={"APP_SERVER_PORT": "1"})
    assert appconfig.DEFAULTS["server"]["port"] == 8080
