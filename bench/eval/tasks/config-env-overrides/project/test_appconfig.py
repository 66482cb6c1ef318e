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
