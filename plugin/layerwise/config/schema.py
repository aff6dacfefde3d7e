"""Build frozen dataclasses from parsed JSON/YAML, collecting every problem instead of stopping.

Field types understood: bool, int, float, str, None, Literal[...], unions of those (e.g.
`int | Literal["auto"]`), nested dataclasses, `dict[int, float]` tables, free-form `dict` and
`tuple[int, ...]` (a JSON list).
Ranges come from field metadata: `field(metadata={"min": 1, "max": 64})`. Every number must be
finite (NaN passes every comparison, so it would pass any range). Values are shown in messages
cut short (`shown`): a hostile file's value may be huge or, through YAML aliases, endless.
"""

import dataclasses
import math
import reprlib
import types
import typing
from typing import Any, Literal

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist = 2, 4, 4
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 40


def shown(value: Any) -> str:
    """A value's repr, cut to a few dozen characters and two levels of nesting."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an integer over Python's 4,300-digit str limit
        return "<an integer of thousands of digits>"


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(v) for v in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(t) for t in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "an object"
    if typing.get_origin(tp) is tuple:
        return f"a list ({_type_name(typing.get_args(tp)[0])} each)"
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is dict or tp is dict:
        return "an object"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


def _convert(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    """Return `value` as type `tp`, or append a problem and return None."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if any(value == choice and type(value) is type(choice) for choice in typing.get_args(tp)):
            return value
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            trial: list[str] = []
            converted = _convert(option, value, path, trial)
            if not trial:
                return converted
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return build(tp, value, path, problems)
    elif origin is dict:
        key_type, value_type = typing.get_args(tp)
        if isinstance(value, dict):
            table = {}
            for key, item in value.items():
                where = f"{path}[{shown(key)}]"
                key_value = _convert(key_type, _number_key(key), where, problems)
                table[key_value] = _convert(value_type, item, where, problems)
            return table
    elif origin is tuple:
        if isinstance(value, list | tuple):
            return _items(typing.get_args(tp)[0], value, path, problems)
    elif tp is dict:
        if isinstance(value, dict):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond any float
                number = math.inf
            if math.isfinite(number):
                return number
            problems.append(f"{path}: must be a finite number, got {shown(value)}")
            return None
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    problems.append(f"{path}: expected {_type_name(tp)}, got {shown(value)}")
    return None


def _items(tp: Any, values: list | tuple, path: str, problems: list[str]) -> tuple | None:
    """A JSON list as a tuple of `tp` (a frozen dataclass field must be hashable), each item
    checked; None if any item is wrong."""
    before = len(problems)
    items = tuple(_convert(tp, item, f"{path}[{i}]", problems) for i, item in enumerate(values))
    return None if len(problems) > before else items


def _number_key(key: Any) -> Any:
    """JSON object keys are strings; tables keyed by numbers accept "1024" as 1024."""
    if isinstance(key, str):
        try:
            return int(key)
        except ValueError:
            return key
    return key


def _check_range(field: dataclasses.Field, value: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    low, high = field.metadata.get("min"), field.metadata.get("max")
    if low is not None and value < low:
        problems.append(f"{path}: must be >= {low}, got {shown(value)}")
    if high is not None and value > high:
        problems.append(f"{path}: must be <= {high}, got {shown(value)}")


def build(cls: type, data: Any, path: str, problems: list[str]) -> Any:
    """Build `cls` from the mapping `data`; problems are appended, None returned on any."""
    if not isinstance(data, dict):
        problems.append(f"{path}: expected an object, got {shown(data)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    before = len(problems)
    for unknown in sorted(set(data) - set(fields), key=str):  # YAML keys may be of any type
        name = unknown if isinstance(unknown, str) and len(unknown) <= 60 else shown(unknown)
        problems.append(f"{path}.{name}: unknown key (known: {', '.join(sorted(fields))})")
    values = {}
    for name, field in fields.items():
        where = f"{path}.{name}"
        if name not in data:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                problems.append(f"{where}: missing")
            continue
        value = _convert(hints[name], data[name], where, problems)
        _check_range(field, value, where, problems)
        values[name] = value
    if len(problems) > before:
        return None
    return cls(**values)
