"""`@activity_defn`: an activity method takes its arguments model and returns its result model.

    @activity_defn("reserve_stock")
    def reserve_stock(self, args: ReserveArgs) -> Reserved | Short: ...

The worker receives the workflow's dict and hands the method the model, validated; the
model the method returns is serialised by the data converter (temporalio.contrib.pydantic).

Why not let the converter decode into the model: the worker decodes arguments before any
interceptor runs and turns every decoding error into a *retryable* "Failed decoding arguments"
(temporalio/worker/_activity.py). Bad arguments come from the definition, not from a passing
fault, so they must fail at once as `InvalidInput` naming the field, which definitions list in
`non_retryable`. So the function Temporal registers takes the dict, as before (the JSON on the
wire is unchanged), and validates it here, once for every activity.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel
from temporalio import activity

from activities.inputs import parse

S = TypeVar("S")
A = TypeVar("A", bound=BaseModel)
R = TypeVar("R")


@dataclass(frozen=True)
class Contract:
    """What an activity takes and gives, read by the catalogue (activities/catalogue.py)."""

    name: str
    method: Callable[..., Any]  # as written, typed
    args: type[BaseModel]
    result: Any  # a result model, or a union of them


def activity_defn(name: str) -> Callable[[Callable[[S, A], R]], Callable[[S, dict], R]]:
    """@activity.defn(name=...) for a method `(self, args: SomeArgs) -> SomeResult`."""

    def decorate(method: Callable[[S, A], R]) -> Callable[[S, dict], R]:
        hints = get_type_hints(method)
        params = [p for p in inspect.signature(method).parameters if p != "self"]
        if len(params) != 1 or not (isinstance(hints.get(params[0]), type) and issubclass(hints[params[0]], BaseModel)):
            raise TypeError(f"activity {name}: {method.__qualname__} must take one argument annotated with its arguments model")
        if "return" not in hints:
            raise TypeError(f"activity {name}: {method.__qualname__} must annotate its result model")
        model: type[A] = hints[params[0]]

        def run(self: S, payload: dict) -> R:
            return method(self, parse(model, payload))

        run.__name__, run.__qualname__, run.__doc__, run.__module__ = (
            method.__name__,
            method.__qualname__,
            method.__doc__,
            method.__module__,
        )
        # What Temporal sees: a dict in (the converter decodes JSON to a dict, never failing on content), the model out.
        run.__annotations__ = {"payload": dict, "return": hints["return"]}
        run.__orderops_contract__ = Contract(name=name, method=method, args=model, result=hints["return"])  # type: ignore[attr-defined]
        return activity.defn(name=name)(run)

    return decorate


def contract(fn: Callable[..., Any]) -> Contract:
    """The contract of an activity defined with @activity_defn (a function or a bound method)."""
    found = getattr(fn, "__orderops_contract__", None)
    if not isinstance(found, Contract):
        raise TypeError(f"{getattr(fn, '__qualname__', fn)} was not defined with @activity_defn")
    return found
