"""The photo-sharing app's settings: defaults, overridden by an optional INI file, then by APP_* variables."""

import configparser
import os

DEFAULTS = {
    "server": {"host": "127.0.0.1", "port": 8080, "debug": False},
    "cache": {"backend": "memory", "ttl_seconds": 300.0, "max_items": 1000},
}
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


class ConfigError(Exception):
    """A setting that is unknown or has a value of the wrong kind."""


def convert(text, default, where):
    """text converted to the type of default; ConfigError naming `where` when it does not convert."""
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in TRUE:
            return True
        if lowered in FALSE:
            return False
        raise ConfigError(f"{where}: expected a yes/no value, got {text!r}")
    try:
        return type(default)(text.strip())
    except ValueError:
        raise ConfigError(f"{where}: expected {type(default).__name__}, got {text!r}") from None


def variable_name(section, key):
    """The environment variable that overrides section.key: APP_SERVER_PORT for server.port."""
    return f"APP_{section}_{key}".upper()


def load(path=None, environ=None):
    """The settings as {section: {key: value}}: the defaults, then the INI file at path (if given), then the
    APP_<SECTION>_<KEY> variables of environ (os.environ when not given) on top."""
    environ = os.environ if environ is None else environ
    settings = {section: dict(values) for section, values in DEFAULTS.items()}
    if path is not None:
        parser = configparser.ConfigParser()
        with open(path) as file:
            parser.read_file(file)
        for section in parser.sections():
            if section not in DEFAULTS:
                raise ConfigError(f"{path}: unknown section [{section}]")
            for key, text in parser.items(section):
                if key not in DEFAULTS[section]:
                    raise ConfigError(f"{path}: unknown setting {section}.{key}")
                settings[section][key] = convert(text, DEFAULTS[section][key], f"{path}: {section}.{key}")
    for section, values in DEFAULTS.items():
        for key, default in values.items():
            name = variable_name(section, key)
            if name in environ:
                settings[section][key] = convert(environ[name], default, name)
    return settings
