"""The photo-sharing app's settings: defaults, overridden by an optional INI file."""

import configparser

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


def load(path=None):
    """The settings as {section: {key: value}}: the defaults, then the INI file at path (if given) on top."""
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
    return settings
