"""The activity catalogue, generated from the code: what each activity takes and what it returns.

For every activity a definition may name (activities.ACTIVITY_NAMES): its name, the first line
of its docstring, its input fields (from its arguments model) and its result fields (from its
result model, or each of its result models). `entries()` gives the data (the `orderops
activities` command prints it as a table), `markdown()` the page docs/activities.md holds:

    .venv/bin/python -m activities.catalogue > docs/activities.md
"""

from __future__ import annotations

import datetime as dt
import inspect
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from activities import ACTIVITY_CLASSES
from activities.defn import Contract, contract

REGENERATE = ".venv/bin/python -m activities.catalogue > docs/activities.md"


@dataclass(frozen=True)
class FieldDoc:
    name: str
    type: str
    required: bool
    default: str | None  # as JSON-ish text; None when required or when it has no fixed default
    description: str
    may_be_absent: bool = False  # a result field left out of the JSON when it has no value

    @property
    def presence(self) -> str:
        """Of an input: `required`, `default <value>` or `optional`."""
        if self.required:
            return "required"
        return f"default {self.default}" if self.default is not None else "optional"

    @property
    def in_result(self) -> str:
        """Of a result: `always`, or `may be absent`."""
        return "may be absent" if self.may_be_absent else "always"


@dataclass(frozen=True)
class ResultDoc:
    model: str
    summary: str
    fields: tuple[FieldDoc, ...]


@dataclass(frozen=True)
class Entry:
    name: str
    summary: str  # the docstring's first line
    group: str  # the activity class, by concern (review, stock, picking, ...)
    module: str
    args_model: str
    inputs: tuple[FieldDoc, ...]
    results: tuple[ResultDoc, ...]  # one per model the activity may return

    @property
    def inputs_text(self) -> str:
        """For a table cell: one input field a line, `name: type (required | default ...)`."""
        return "\n".join(f"{f.name}: {f.type} ({f.presence})" for f in self.inputs)

    @property
    def results_text(self) -> str:
        """For a table cell: the result's field names; `Model: fields` a line when it is one of several models."""
        names = [", ".join(f.name + ("?" if f.may_be_absent else "") for f in r.fields) for r in self.results]
        if len(self.results) == 1:
            return names[0]
        return "\n".join(f"{r.model}: {text}" for r, text in zip(self.results, names, strict=True))


def entries() -> list[Entry]:
    """Every activity, grouped as activities/__init__.py lists the classes, in the order they are written."""
    found = []
    for cls in ACTIVITY_CLASSES:
        for fn in vars(cls).values():
            if hasattr(fn, "__temporal_activity_definition"):
                found.append(_entry(cls, contract(fn)))
    return found


def _entry(cls: type, c: Contract) -> Entry:
    return Entry(
        name=c.name,
        summary=_first_line(c.method.__doc__),
        group=cls.__name__.removesuffix("Activities").lower(),
        module=c.method.__module__,
        args_model=c.args.__name__,
        inputs=_fields(c.args),
        results=tuple(ResultDoc(m.__name__, _first_line(_own_doc(m)), _fields(m)) for m in _result_models(c.result)),
    )


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc).splitlines()[0] if doc and doc.strip() else ""


def _own_doc(model: type[BaseModel]) -> str | None:
    return model.__doc__ if "__doc__" in vars(model) else None


def _result_models(result: Any) -> list[type[BaseModel]]:
    members = typing.get_args(result) if isinstance(result, types.UnionType) or typing.get_origin(result) is typing.Union else (result,)
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def _fields(model: type[BaseModel]) -> tuple[FieldDoc, ...]:
    return tuple(_field(name, info) for name, info in model.model_fields.items())


def _field(name: str, info: FieldInfo) -> FieldDoc:
    required = info.is_required()
    default = None
    if not required and info.default is not PydanticUndefined:
        default = _value(info.default)
    elif not required and info.default_factory is not None:
        try:
            default = _value(info.default_factory())  # type: ignore[call-arg]
        except TypeError:
            default = None
    absent = getattr(info, "exclude_if", None) is not None
    shown = type_name(info.annotation)
    if absent:  # never null: left out instead
        shown = shown.removesuffix(" | null")
    return FieldDoc(name, shown, required, default, info.description or "", absent)


def _value(value: Any) -> str:
    if isinstance(value, BaseModel):
        dumped = value.model_dump(mode="json", exclude_defaults=True)
        return "{}" if not dumped else _json(dumped)
    return _json(value)


def _json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dt.timedelta):
        return _duration(value)
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_json(v) for v in value) + "]"
    return str(value)


def _duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def type_name(annotation: Any) -> str:
    """A field's type as a reader of the definition thinks of it: `list[Carrier]`, `"split" | "backorder"`, `duration`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return "duration" if args[0] is dt.timedelta else type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(_json(a) for a in args)
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return " | ".join(type_name(a) for a in args)
    if origin in (list, tuple, set, frozenset, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    if annotation is typing.Any:
        return "any"
    if annotation is dt.timedelta:
        return "duration"
    return getattr(annotation, "__name__", str(annotation))


# -- Markdown ------------------------------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(fields: tuple[FieldDoc, ...], result: bool) -> list[str]:
    if not fields:
        return ["(no fields)"]
    rows = [f"| field | type | {'present' if result else 'given'} | description |", "| --- | --- | --- | --- |"]
    rows += [
        f"| `{f.name}` | `{_cell(f.type)}` | {_cell(f.in_result if result else f.presence)} | {_cell(f.description)} |" for f in fields
    ]
    return rows


# Nested models spelled out under "Types"; the order and the settings have pages of their own.
_OWN_MODULES = ("activities.results", "activities.inputs")


def _nested(annotation: Any, seen: dict[str, type[BaseModel]]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation.__module__ in _OWN_MODULES and annotation.__name__ not in seen:
            seen[annotation.__name__] = annotation
            for info in annotation.model_fields.values():
                _nested(info.annotation, seen)
        return
    for arg in typing.get_args(annotation):
        _nested(arg, seen)


@dataclass(frozen=True)
class TypeDoc:
    name: str
    is_input: bool  # part of an activity's input (else of a result)
    fields: tuple[FieldDoc, ...]


def nested_types() -> list[TypeDoc]:
    """Models named in the activities' fields (a shipment, a parcel, a scan...), by name, with their fields."""
    seen: dict[str, type[BaseModel]] = {}
    for e in entries():
        c = _contract_of(e.name)
        for model in (c.args, *_result_models(c.result)):
            for info in model.model_fields.values():
                _nested(info.annotation, seen)
    return [TypeDoc(name, model.__module__ == "activities.inputs", _fields(model)) for name, model in sorted(seen.items())]


def _contract_of(name: str) -> Contract:
    for cls in ACTIVITY_CLASSES:
        for fn in vars(cls).values():
            if hasattr(fn, "__temporal_activity_definition") and contract(fn).name == name:
                return contract(fn)
    raise KeyError(name)


def markdown() -> str:
    """docs/activities.md."""
    all_entries = entries()
    lines = [
        "# Activities",
        "",
        "<!-- Generated from the code by `python -m activities.catalogue`; do not edit by hand. -->",
        "",
        "The steps a process definition may name in a task's `activity:`, with what each takes (its",
        "`input:` mapping, validated by the arguments model: a mistake fails the step at once as a",
        "non-retryable `InvalidInput` naming the field) and what it returns (the `result` its",
        "conditions read). Every activity also receives `order`; keys an activity does not take are",
        "ignored. Regenerate this page after changing an activity:",
        "",
        "```sh",
        REGENERATE,
        "```",
        "",
        "| activity | what it does |",
        "| --- | --- |",
    ]
    lines += [f"| [`{e.name}`](#{e.name}) | {_cell(e.summary)} |" for e in all_entries]
    group = None
    for e in all_entries:
        if e.group != group:
            group = e.group
            lines += ["", f"## {group.capitalize()} (`{e.module}`)"]
        lines += ["", f"### {e.name}", "", e.summary or "(undocumented)", "", f"Input (`{e.args_model}`):", "", *_table(e.inputs, False)]
        for r in e.results:
            heading = f"Result (`{r.model}`)" if len(e.results) == 1 else f"Result, one of: `{r.model}`"
            lines += ["", f"{heading}{': ' + r.summary if r.summary else ''}:", "", *_table(r.fields, True)]
    lines += [
        "",
        "## Types",
        "",
        "The models named above. `Order` is the order as it enters the system ([domain.md](domain.md),",
        "`orderops/order.py`); `ReviewRules` is described in [review-rules.md](review-rules.md); `StockPolicy`,",
        "`PickingPolicy`, `PackingRules`, `Carrier` in [warehouse.md](warehouse.md) (`orderops/settings.py`);",
        "`Promise` in [promises.md](promises.md).",
    ]
    for t in nested_types():
        lines += ["", f"### {t.name}", "", *_table(t.fields, result=not t.is_input)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
