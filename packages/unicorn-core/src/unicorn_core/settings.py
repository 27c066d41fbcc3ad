"""The settings registry: one declaration per setting, validated once.

A :class:`Setting` carries everything the command line, the config file,
``--help``, ``--print-config`` and the generated reference page need. Core's
own settings live beside the code that uses them (``sockets.py``,
``logs.py``, ``hooks.py`` ...); other packages contribute theirs through the
``unicorn.settings`` entry-point group, either as ``Setting`` objects or as
plain dicts (see docs/seams.md). :func:`build_registry` gathers them all and
refuses duplicates, naming both owners.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from unicorn_core.errors import ConfigError

SETTINGS_GROUP = "unicorn.settings"

#: Core modules that declare settings, in the order their sections appear.
CORE_SETTING_MODULES = (
    "unicorn_core.config",
    "unicorn_core.sockets",
    "unicorn_core.arbiter",
    "unicorn_core.workers",
    "unicorn_core.recycling",
    "unicorn_core.http_settings",
    "unicorn_core.tls",
    "unicorn_core.app_loading",
    "unicorn_core.paste_deploy",
    "unicorn_core.reloader",
    "unicorn_core.process",
    "unicorn_core.logs",
    "unicorn_core.statsd",
    "unicorn_core.metrics",
    "unicorn_core.control",
    "unicorn_core.hooks",
    "unicorn_core.tracing",
)

TYPE_NAMES = (
    "int",
    "positive_int",
    "float",
    "bool",
    "string",
    "list",
    "dict",
    "callable",
    "choice",
)

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def _accepts(setting: Setting) -> str:
    """Describe in words what a setting accepts, for error messages."""
    t = setting.type
    if callable(t):
        return "a value its validator accepts"
    return {
        "int": "an integer",
        "positive_int": "a non-negative integer",
        "float": "a number",
        "bool": "true or false",
        "string": "a string",
        "list": "a list of strings (or a comma-separated string)",
        "dict": "a dict (or a JSON object)",
        "callable": f"a callable taking {setting.arity} positional argument(s), "
        "or the dotted path to one",
        "choice": "one of " + ", ".join(repr(c) for c in setting.choices),
    }[t]


def import_object(path: str) -> Any:
    """Import ``package.module:attr`` or ``package.module.attr``."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not a dotted path to an object")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _check_arity(func: Callable[..., Any], arity: int) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return True  # builtins without a signature: trust them
    try:
        signature.bind(*([None] * arity))
    except TypeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting. ``type`` is a type name (see docs/seams.md) or a validator."""

    name: str
    section: str
    cli: tuple[str, ...] = ()
    env: str | None = None
    type: str | Callable[[Any], Any] = "string"
    default: Any = None
    meta: str | None = None
    doc: str = ""
    arity: int | None = None
    choices: tuple[Any, ...] = ()
    #: turns the environment variable's text into a value (``PORT`` -> bind list)
    from_env: Callable[[str], Any] | None = None
    #: a command-line flag that sets a bool to this value (``--no-sendfile``)
    flag_value: bool = True
    #: the flag may be repeated, each use adding an item (default: list types)
    repeat: bool | None = None
    #: the flag may be given without a value, which then means this one
    #: (``--proxy-protocol`` alone is ``auto``, as in gunicorn)
    const: Any = None
    owner: str = field(default="unicorn-core", compare=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError(f"setting name {self.name!r} is not an identifier")
        if isinstance(self.type, str) and self.type not in TYPE_NAMES:
            raise ConfigError(f"setting {self.name!r} has unknown type {self.type!r}")
        if self.type == "callable" and self.arity is None:
            raise ConfigError(f"setting {self.name!r} is a callable without an arity")
        if self.type == "choice" and not self.choices:
            raise ConfigError(f"setting {self.name!r} is a choice without choices")
        for flag in self.cli:
            if not flag.startswith("-"):
                raise ConfigError(f"setting {self.name!r} has a flag without a dash: {flag!r}")

    @classmethod
    def from_spec(cls, spec: Setting | Mapping[str, Any], owner: str) -> Setting:
        """Accept a Setting or a plain dict spec as documented in docs/seams.md."""
        if isinstance(spec, Setting):
            return spec if spec.owner == owner else _replace_owner(spec, owner)
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{owner}: a setting spec must be a Setting or a dict, got {spec!r}")
        known = {"name", "section", "cli", "env", "type", "default", "meta", "doc", "arity"}
        known |= {"choices"}
        unknown = set(spec) - known
        if unknown:
            raise ConfigError(
                f"{owner}: setting {spec.get('name')!r} has unknown keys {sorted(unknown)}"
            )
        try:
            return cls(
                name=spec["name"],
                section=spec.get("section", "Other"),
                cli=tuple(spec.get("cli") or ()),
                env=spec.get("env"),
                type=spec.get("type", "string"),
                default=spec.get("default"),
                meta=spec.get("meta"),
                doc=spec.get("doc", ""),
                arity=spec.get("arity"),
                choices=tuple(spec.get("choices") or ()),
                owner=owner,
            )
        except KeyError as exc:
            raise ConfigError(f"{owner}: a setting spec lacks the key {exc}") from None

    @property
    def repeatable(self) -> bool:
        return self.type == "list" if self.repeat is None else self.repeat

    @property
    def summary(self) -> str:
        """The doc's first sentence, for ``--help``."""
        text = " ".join(self.doc.split())
        head, sep, _ = text.partition(". ")
        return head + ("." if sep else "")

    def validate(self, value: Any) -> Any:
        """Return the value converted to the setting's type, or raise ConfigError."""
        try:
            return self._convert(value)
        except (ValueError, TypeError) as exc:
            detail = str(exc)
            accepted = _accepts(self)
            msg = f"invalid value for setting {self.name!r}: {value!r}; expected {accepted}"
            if detail and detail not in msg:
                msg += f" ({detail})"
            raise ConfigError(msg) from None

    def _convert(self, value: Any) -> Any:
        t = self.type
        if callable(t):
            return t(value)
        if value is None and self.default is None and t not in ("bool",):
            return None
        if t == "int" or t == "positive_int":
            if isinstance(value, bool):
                raise ValueError("")
            if isinstance(value, str):
                text = value.strip()
                try:
                    value = int(text, 0)
                except ValueError:
                    value = int(text, 8) if text.startswith("0") else int(text)
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            elif not isinstance(value, int):
                raise TypeError("")
            if t == "positive_int" and value < 0:
                raise ValueError("")
            return value
        if t == "float":
            if isinstance(value, bool):
                raise ValueError("")
            return float(value)
        if t == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str):
                low = value.strip().lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
            raise ValueError("")
        if t == "string":
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str):
                raise TypeError("")
            return value
        if t == "list":
            if isinstance(value, str):
                return [part.strip() for part in value.split(",") if part.strip()]
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)
            raise TypeError("")
        if t == "dict":
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise TypeError("")
            return value
        if t == "callable":
            if isinstance(value, str):
                value = import_object(value)
            if not callable(value):
                raise TypeError("")
            assert self.arity is not None
            if not _check_arity(value, self.arity):
                raise ValueError(f"it cannot be called with {self.arity} argument(s)")
            return value
        if t == "choice":
            if value in self.choices:
                return value
            if isinstance(value, str):  # "INFO" for "info", as gunicorn accepts
                for choice in self.choices:
                    if isinstance(choice, str) and choice.lower() == value.lower():
                        return choice
            raise ValueError("")
        raise AssertionError(t)  # pragma: no cover


def _replace_owner(setting: Setting, owner: str) -> Setting:
    import dataclasses

    return dataclasses.replace(setting, owner=owner)


class Registry:
    """All known settings, in declaration order, keyed by name."""

    def __init__(self) -> None:
        self._settings: dict[str, Setting] = {}

    def add(self, setting: Setting) -> None:
        if setting.name in RESERVED_NAMES:
            raise ConfigError(
                f"{setting.owner}: a setting cannot be named {setting.name!r} (reserved by Config)"
            )
        other = self._settings.get(setting.name)
        if other is not None:
            raise ConfigError(
                f"setting {setting.name!r} is declared twice: by {other.owner} and by {setting.owner}"
            )
        flags = {f: s for s in self._settings.values() for f in s.cli}
        for flag in setting.cli:
            if flag in flags:
                raise ConfigError(
                    f"flag {flag} is declared twice: by {flags[flag].owner} "
                    f"({flags[flag].name}) and by {setting.owner} ({setting.name})"
                )
        self._settings[setting.name] = setting

    def __getitem__(self, name: str) -> Setting:
        return self._settings[name]

    def __contains__(self, name: object) -> bool:
        return name in self._settings

    def __iter__(self) -> Iterator[Setting]:
        return iter(self._settings.values())

    def __len__(self) -> int:
        return len(self._settings)

    def sections(self) -> dict[str, list[Setting]]:
        out: dict[str, list[Setting]] = {}
        for s in self._settings.values():
            out.setdefault(s.section, []).append(s)
        return out

    def defaults(self) -> dict[str, Any]:
        return {s.name: s.default for s in self._settings.values()}


def core_settings() -> Iterable[Setting]:
    """Every setting core declares, module by module."""
    for module_name in CORE_SETTING_MODULES:
        module = importlib.import_module(module_name)
        yield from module.SETTINGS


def _entry_point_settings() -> Iterator[tuple[str, Any]]:
    for ep in importlib.metadata.entry_points(group=SETTINGS_GROUP):
        owner = ep.dist.name if ep.dist is not None else ep.value
        if owner == "unicorn-core":
            continue
        try:
            factory = ep.load()
            specs = list(factory())
        except Exception as exc:
            raise ConfigError(
                f"settings entry point {ep.name!r} of {owner} failed: {type(exc).__name__}: {exc}"
            ) from None
        for spec in specs:
            yield owner, spec


def build_registry(extra: Iterable[Setting] = ()) -> Registry:
    """Core's settings plus every installed package's, validated once."""
    registry = Registry()
    for setting in core_settings():
        registry.add(setting)
    for owner, spec in _entry_point_settings():
        setting = Setting.from_spec(spec, owner)
        # the default must itself be valid, so a package cannot ship a broken one
        if setting.default is not None:
            setting.validate(setting.default)
        registry.add(setting)
    for setting in extra:
        registry.add(setting)
    return registry


class Config:
    """Every setting as an attribute; built by ``unicorn_core.config.load_config``.

    ``sources`` records where each non-default value came from, for
    ``--print-config`` and error messages.
    """

    def __init__(self, registry: Registry, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "_values", registry.defaults())
        object.__setattr__(self, "sources", {})
        object.__setattr__(self, "app_uri", None)
        object.__setattr__(self, "config_path", None)
        #: (logging level, message) noticed while loading: files read, names ignored
        object.__setattr__(self, "notes", [])
        # values also live in the instance dict: workers read settings on hot
        # paths, and a plain attribute lookup is several times cheaper than
        # going through __getattr__
        self.__dict__.update(self._values)
        for key, value in (values or {}).items():
            self.set(key, value, "code")

    def set(self, name: str, value: Any, source: str = "code") -> None:
        if name not in self.registry:
            raise ConfigError(f"unknown setting {name!r}")
        value = self.registry[name].validate(value)
        self._values[name] = value
        self.__dict__[name] = value
        self.sources[name] = source

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("app_uri", "config_path"):
            object.__setattr__(self, name, value)
        else:
            self.set(name, value, "code")

    @property
    def settings(self) -> Registry:
        """The registry, under gunicorn's name (``key in cfg.settings``)."""
        return self.registry

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._values.items())

    @property
    def is_ssl(self) -> bool:
        return bool(self._values.get("certfile") or self._values.get("keyfile"))

    @property
    def env(self) -> dict[str, str]:
        """``raw_env`` as a dict."""
        out = {}
        for item in self._values.get("raw_env") or ():
            key, _, value = item.partition("=")
            out[key] = value
        return out


#: names a setting may not take, as they would shadow Config's own members
RESERVED_NAMES = frozenset(
    {name for name in dir(Config) if not name.startswith("__")}
    | {"registry", "sources", "app_uri", "config_path", "notes"}
)
