import pytest

from appconfig import ConfigError, load


def test_defaults():
    settings = load()
    assert settings["server"]["port"] == 8080
    assert settings["cache"]["backend"] == "memory"


def test_file_overrides_defaults(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text("[server]\nport = 9000\ndebug = yes\n")
    settings = load(path)
    assert settings["server"]["port"] == 9000
    assert settings["server"]["debug"] is True
    assert settings["server"]["host"] == "127.0.0.1"


def test_bad_value_in_file(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text("[cache]\nmax_items = lots\n")
    with pytest.raises(ConfigError, match="cache.max_items"):
        load(path)


def test_environment_overrides_file_and_default(tmp_path):
    path = tmp_path / "app.ini"
    path.write_text("[server]\nport = 9000\n")
    settings = load(path, environ={"APP_SERVER_PORT": "9100", "APP_CACHE_TTL_SECONDS": "5"})
    assert settings["server"]["port"] == 9100
    assert settings["cache"]["ttl_seconds"] == 5.0


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="APP_SERVER_DEBUG"):
        load(environ={"APP_SERVER_DEBUG": "maybe"})


def test_unknown_variables_are_ignored():
    assert load(environ={"APP_SERVER_COLOR": "blue"}) == load(environ={})
