"""Tool schemas from typed, documented Python: one JSON Schema builder for every tool a model is offered.

A function's docstring says what it does (its first paragraph) and, under "Args:", what each parameter means; a
dataclass's "Attributes:" section does the same for its fields. Types: str, int, float, bool, Literal[...] (an
enum), list[X], X | None (may be null: give it a default); Annotated[int, Schema(minimum=0)] adds JSON Schema
keywords. Used by the voice functions (sub_agents_tars.py), the planner's plan_subtasks (core/plans.py) and the
bash and editor tools as OpenAI-compatible models see them (core/tools.py). A missing description or an
unsupported type fails at import, not in a call.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
from collections.abc import Callable
from typing import Annotated, Literal, Union, get_args, get_origin, get_type_hints

JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


class Schema(dict):
    """JSON Schema keywords a parameter adds to its type's: `Annotated[int, Schema(minimum=0)]`."""

    def __hash__(self) -> int:  # typing puts the metadata of an Annotated inside `X | None` in a set
        return hash(tuple(sorted(self.items())))


def docstring_section(doc: str, heading: str) -> dict[str, str]:
    """The "name: description" lines of a cleaned docstring's `heading:` section (Args, Attributes); a longer
    description goes on indented lines."""
    found: dict[str, str] = {}
    section = doc.partition(f"\n{heading}:\n")[2]
    last = None
    for line in section.splitlines():
        if match := re.fullmatch(r" {4}(\w+): *(.+)", line):
            last = match[1]
            found[last] = match[2].strip()
        elif line.startswith(" " * 8) and last:
            found[last] += " " + line.strip()
        else:
            break
    return found


def unwrap(hint: object) -> tuple[bool, object, dict]:
    """(may be None, the type without None and Annotated, the JSON Schema keywords Annotated adds)."""
    nullable = False
    if get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint):
        others = [a for a in get_args(hint) if a is not type(None)]
        nullable, hint = True, (others[0] if len(others) == 1 else hint)  # X | Y | None: json_type refuses it
    extra: dict = {}
    if get_origin(hint) is Annotated:
        hint, *metadata = get_args(hint)
        for item in metadata:
            extra.update(item if isinstance(item, Schema) else {})
    return nullable, hint, extra


def json_type(hint: object, where: str) -> dict:
    """The JSON Schema of one type (see the module's docstring for the types understood)."""
    if get_origin(hint) is Literal:
        values = list(get_args(hint))
        kinds = {JSON_TYPES.get(type(v)) for v in values}
        if len(kinds) != 1 or None in kinds:
            raise TypeError(f"{where}: a Literal's values must all be str, or all int, float or bool")
        return {"type": kinds.pop(), "enum": values}
    if get_origin(hint) is list and len(get_args(hint)) == 1:
        return {"type": "array", "items": json_type(get_args(hint)[0], where)}
    if hint not in JSON_TYPES:
        raise TypeError(f"{where}: type {hint!r} has no JSON Schema here; use str, int, float, bool, Literal or "
                        f"list[...]")
    return {"type": JSON_TYPES[hint]}


def function_schema(function: Callable, *, skip_first: bool = False) -> dict:
    """The tool (name, description, input_schema) of a typed, documented function (skip_first: a method's self)."""
    name = function.__name__
    doc = inspect.cleandoc(function.__doc__ or "")
    description = " ".join(doc.split("\n\n")[0].split())
    if not description:
        raise TypeError(f"{name} has no docstring: its first paragraph tells the model what it does")
    hints = get_type_hints(function, include_extras=True)
    arg_docs = docstring_section(doc, "Args")
    properties, required = {}, []
    for param in list(inspect.signature(function).parameters.values())[1 if skip_first else 0:]:
        if param.name not in hints or param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"{name}: parameter {param.name} needs a type hint (and no * or **)")
        if param.name not in arg_docs:
            raise TypeError(f"{name}: parameter {param.name} is not described under Args:")
        nullable, base, extra = unwrap(hints[param.name])
        properties[param.name] = {**json_type(base, f"{name}({param.name})"), **extra,
                                  "description": arg_docs.pop(param.name)}
        if param.default is param.empty:
            if nullable:
                raise TypeError(f"{name}: parameter {param.name} may be None, so give it a default")
            required.append(param.name)
    if arg_docs:
        raise TypeError(f"{name}: Args: describes {', '.join(arg_docs)}, not in its signature")
    input_schema = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    return {"name": name, "description": description, "input_schema": input_schema}


def object_schema(cls: type) -> dict:
    """The JSON Schema of a documented dataclass: a property per field (described by its Attributes: line); fields
    without a default are required. A field left undescribed fails at import."""
    docs = docstring_section(inspect.cleandoc(cls.__doc__ or ""), "Attributes")
    hints = get_type_hints(cls, include_extras=True)
    properties, required = {}, []
    for item in dataclasses.fields(cls):
        if item.name not in docs:
            raise TypeError(f"{cls.__name__}.{item.name} is not described under Attributes:")
        _, base, extra = unwrap(hints[item.name])
        properties[item.name] = {**json_type(base, f"{cls.__name__}.{item.name}"), **extra,
                                 "description": docs[item.name]}
        if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            required.append(item.name)
    return {"type": "object", "properties": properties, "required": required}


def tool_of(cls: type, name: str) -> dict:
    """The tool (name, description, input_schema) whose input is a documented dataclass (its docstring's first
    paragraph says what the tool does)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    return {"name": name, "description": " ".join(doc.split("\n\n")[0].split()), "input_schema": object_schema(cls)}
