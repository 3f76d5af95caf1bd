"""One setting = one dataclass field: its name, type, default, range or choices and help.

A stage's settings are a frozen dataclass whose fields are made with :func:`setting` and whose
``__post_init__`` calls :func:`check_fields`, the one validator: it converts every value to the
field's type (``float``, ``int``, ``str``, ``bool``, ``tuple[float, ...]``, ``tuple[int, int,
int]``, each optionally ``| None``; ``tuple[float, ...] | str`` also takes one word, as
``--score-thresholds auto``, left to the stage to check) and checks its choices and range, naming the command-line
flag in the error (``--nms-radius: must be positive, got 0``). :func:`add_options` makes a
command's argparse options from the same fields, so a flag's name, type, default, choices and
help exist once. :func:`apply_settings` fills the same options from a workflow config's section
(``--settings``, :func:`settings_option`; :mod:`.workflow`), checked by the same fields, with
errors naming the config key (``config extract.context: must be >= 0, got -1``); flags given on
the command line win. This module imports only the standard library and :mod:`synful.errors`
(yaml when ``--settings`` is read), so ``synful --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import types
import typing

from ..errors import SynfulError


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a field's type does not say: help text, choices, range (inclusive ``minimum`` and
    ``maximum``, exclusive ``above``) and the argparse metavar."""

    help: str
    choices: tuple | None = None
    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    metavar: str | tuple | None = None


def setting(default, help: str, **spec):
    """A dataclass field holding a setting (``spec``: the keywords of :class:`Spec`)."""
    if isinstance(default, list | dict | set):
        raise TypeError("a setting's default must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata={"setting": Spec(help, **spec)})


def flag(name: str) -> str:
    """The command-line flag of a setting: ``nms_radius`` -> ``--nms-radius``."""
    return "--" + name.replace("_", "-")


def settings_of(model) -> list[dataclasses.Field]:
    """The fields of ``model`` (a class or an instance) that are settings, in order."""
    return [f for f in dataclasses.fields(model) if "setting" in f.metadata]


def defaults(model) -> dict:
    """Every setting of ``model`` and its default."""
    return {f.name: f.default for f in settings_of(model)}


def values_from(model, args: argparse.Namespace) -> dict:
    """The settings of ``model`` as parsed into ``args`` (keywords for the model or a stage)."""
    return {f.name: getattr(args, f.name) for f in settings_of(model)}


class _Kind(typing.NamedTuple):
    item: type  # float, int, str or bool
    count: int | str | None  # None: a scalar; "+": a list of one or more; n: exactly n
    optional: bool  # None is a value
    word: bool  # a list that may be given as one word instead (e.g. 'auto'), its stage's to check


def _kind(annotation) -> _Kind:
    if isinstance(annotation, str):
        raise TypeError(
            f"setting type {annotation!r} is a string: a settings model's module must not use "
            "'from __future__ import annotations'"
        )
    members = [annotation]
    if isinstance(annotation, types.UnionType):
        members = list(typing.get_args(annotation))
    optional = type(None) in members
    word = str in members and len(members) - optional > 1
    members = [m for m in members if m is not type(None) and not (word and m is str)]
    if len(members) != 1:
        raise TypeError(f"unsupported setting type {annotation}")
    (annotation,) = members
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        if len(items) == 2 and items[1] is Ellipsis:
            return _Kind(items[0], "+", optional, word)
        if len(set(items)) != 1:
            raise TypeError(f"unsupported setting type {annotation}")
        return _Kind(items[0], len(items), optional, word)
    if word:
        raise TypeError(f"unsupported setting type {annotation}")
    return _Kind(annotation, None, optional, word)


def _one_word(value) -> bool:
    """A word given for a list: ``'auto'`` or ``['auto']`` (a number is not a word)."""
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def _range_text(spec: Spec) -> str | None:
    low = None if spec.minimum is None else f"{spec.minimum:g}"
    if low is not None and spec.maximum is not None:
        return f"must lie in [{low}, {spec.maximum:g}]"
    if spec.above is not None:
        return "must be positive" if spec.above == 0 else f"must be > {spec.above:g}"
    if low is not None:
        return f"must be >= {low}"
    if spec.maximum is not None:
        return f"must be <= {spec.maximum:g}"
    return None


def _in_range(value: float, spec: Spec) -> bool:
    return not (
        (spec.minimum is not None and value < spec.minimum)
        or (spec.maximum is not None and value > spec.maximum)
        or (spec.above is not None and value <= spec.above)
    )


def _scalar(name: str, value, kind, spec: Spec):
    if kind is bool:
        return bool(value)
    if kind is str:
        if not isinstance(value, str):
            raise SynfulError(flag(name), f"not a string: {value!r}")
        if spec.choices is not None and value not in spec.choices:
            raise SynfulError(
                flag(name), f"unknown value {value!r}, expected one of {', '.join(spec.choices)}"
            )
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SynfulError(flag(name), f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise SynfulError(flag(name), f"must be finite, got {value}")
    if kind is int:
        if number != int(number):
            raise SynfulError(flag(name), f"not an integer: {value!r}")
        number = int(number)
    if not _in_range(number, spec):
        raise SynfulError(flag(name), f"{_range_text(spec)}, got {number:g}")
    if spec.choices is not None and number not in spec.choices:
        expected = ", ".join(str(choice) for choice in spec.choices)
        raise SynfulError(flag(name), f"unknown value {number:g}, expected one of {expected}")
    return number


def check_value(field: dataclasses.Field, value):
    """``value`` converted to ``field``'s type, or a :class:`SynfulError` naming its flag."""
    spec = field.metadata["setting"]
    kind = _kind(field.type)
    if value is None:
        if kind.optional:
            return None
        raise SynfulError(flag(field.name), "needs a value")
    if kind.count is None:
        return _scalar(field.name, value, kind.item, spec)
    if kind.word and _one_word(value):
        return value if isinstance(value, str) else value[0]
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise SynfulError(flag(field.name), f"not a list: {value!r}")
    items = tuple(_scalar(field.name, item, kind.item, spec) for item in value)
    if (kind.count == "+" and not items) or (kind.count != "+" and len(items) != kind.count):
        expected = "at least 1" if kind.count == "+" else str(kind.count)
        raise SynfulError(flag(field.name), f"needs {expected} values, got {list(value)}")
    return items


def check_fields(instance) -> None:
    """The validator of a frozen settings dataclass: convert and check every setting in place."""
    for field in settings_of(instance):
        value = check_value(field, getattr(instance, field.name))
        object.__setattr__(instance, field.name, value)


#: the attribute of the parsed arguments that holds the settings given as flags
GIVEN = "_given_settings"


def _mark_given(namespace, dest: str) -> None:
    given = getattr(namespace, GIVEN, None)
    if given is None:
        given = set()
        setattr(namespace, GIVEN, given)
    given.add(dest)


class _Store(argparse._StoreAction):
    """argparse's ``store``, remembering that the flag was given (it wins over ``--settings``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _mark_given(namespace, self.dest)


class _StoreTrue(argparse._StoreTrueAction):
    """argparse's ``store_true``, remembering that the flag was given."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _mark_given(namespace, self.dest)


def add_options(parser: argparse.ArgumentParser, model) -> None:
    """Add one ``--flag`` per setting of ``model`` to ``parser``, in the fields' order.

    The option's default is the field's; argparse converts numbers, the stage's model checks
    ranges (so errors are the model's one line, ``synful: error: --flag: ...``). A flag given
    on the command line is remembered (:data:`GIVEN`): it wins over ``--settings``.
    """
    for field in settings_of(model):
        spec = field.metadata["setting"]
        kind = _kind(field.type)
        if kind.item is bool:
            if field.default is not False:
                raise TypeError(f"{field.name}: a flag's default must be False")
            parser.add_argument(flag(field.name), action=_StoreTrue, help=spec.help)
            continue
        options = {"default": field.default, "help": spec.help, "action": _Store}
        if isinstance(field.default, tuple):
            options["default"] = list(field.default)  # as argparse would parse it
        if kind.item in (int, float) and not kind.word:  # a word is the model's to check
            options["type"] = kind.item
        if spec.choices is not None:
            options["choices"] = list(spec.choices)
        if spec.metavar is not None:
            options["metavar"] = spec.metavar
        if kind.count is not None:
            options["nargs"] = kind.count
        parser.add_argument(flag(field.name), **options)


def settings_option(parser: argparse.ArgumentParser, section: str) -> None:
    """``--settings CONFIG``: settings from a workflow config's ``section`` (see
    :func:`apply_settings`)."""
    parser.add_argument(
        "--settings",
        default=None,
        metavar="CONFIG",
        help=f"take settings from the '{section}:' section of a workflow config (a YAML file "
        f"such as config/config.yaml, or the same inline: '{{{section}: {{KEY: VALUE}}}}'); "
        "a key is a setting's option without the dashes (nms_radius for --nms-radius); "
        "options given on the command line win (what the workflow passes)",
    )


def is_inline(text: str) -> bool:
    """``--settings`` given inline (YAML/JSON mapping), not as a file."""
    return text.lstrip().startswith("{")


def settings_origin(text: str) -> str:
    """What errors in ``--settings`` name: ``config`` for inline YAML/JSON, else the file."""
    return "config" if is_inline(text) else text


def _load_config(text: str) -> tuple[str, object]:
    """(origin, data) of ``--settings``: inline YAML/JSON (origin ``config``) or a file."""
    import yaml

    origin = settings_origin(text)
    if not is_inline(text):
        try:
            with open(text) as f:
                text = f.read()
        except OSError as exc:
            raise SynfulError(origin, f"cannot read the settings ({exc.strerror})") from None
    try:
        return origin, yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SynfulError(origin, f"not valid YAML ({str(exc).splitlines()[0]})") from None


def apply_settings(args: argparse.Namespace, section: str, models, *, skip=(), own=()) -> dict:
    """Fill ``args`` with the settings of ``args.settings`` (``--settings``), in place.

    The section ``section`` of the workflow config is read; each key is a setting of one of
    ``models`` (checked and converted by :func:`check_value`, an error naming the config key:
    ``config extract.context: must be >= 0, got -1``), a key of ``skip`` (the workflow's own,
    ignored) or of ``own`` (returned for the command to apply); any other key is an error. A
    setting given as a flag on the command line keeps the flag's value.

    Returns:
        the values of the ``own`` keys found in the section (but not given as flags).
    """
    text = getattr(args, "settings", None)
    if text is None:
        return {}
    origin, data = _load_config(text)
    if not isinstance(data, dict) or not isinstance(data.get(section), dict | None):
        raise SynfulError(origin, f"expected a mapping with a '{section}:' section")
    if section not in data:
        raise SynfulError(origin, f"no '{section}:' section")
    fields = {f.name: f for model in models for f in settings_of(model)}
    given = getattr(args, GIVEN, None) or set()
    found = {}
    for key, value in (data[section] or {}).items():
        where = f"{origin} {section}.{key}"
        if key in skip:
            continue
        if key in own:
            if key not in given:
                found[key] = value
            continue
        if key not in fields:
            known = sorted([*fields, *own])
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SynfulError(where, f"unknown setting{hint}")
        field = fields[key]
        if _kind(field.type).item is bool and not isinstance(value, bool):
            raise SynfulError(where, f"must be true or false, got {value!r}")
        try:
            value = check_value(field, value)
        except SynfulError as exc:
            raise SynfulError(where, exc.problem) from None
        if key not in given:
            setattr(args, key, value)
    return found
