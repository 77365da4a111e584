"""FunctionSpec, the record each decorator writes, and the validation of a whole app's bindings."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from durafn.http import AuthLevel
from durafn.ncrontab import validate_schedule

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DEFAULT_METHODS = ("GET", "POST")


class FunctionKind(str, Enum):
    """What triggers a function."""

    HTTP = "http"
    ORCHESTRATOR = "orchestrator"
    ACTIVITY = "activity"
    SCHEDULE = "schedule"
    ENTITY = "entity"


@dataclass
class FunctionSpec:
    """One registered function and its bindings, as the decorators recorded them."""

    fn: Callable[..., Any]
    kind: FunctionKind | None = None
    name: str = ""
    route: str | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    auth_level: AuthLevel | None = None
    trigger_arg_name: str | None = None
    client_name: str | None = None
    context_name: str | None = None
    input_name: str | None = None
    schedule: str | None = None
    run_on_startup: bool = False
    kinds_seen: list[FunctionKind] = field(default_factory=list)

    @property
    def location(self) -> str:
        """``file:line`` of the function's definition."""
        code = getattr(self.fn, "__code__", None)
        if code is None:
            return "<unknown>"
        return f"{code.co_filename}:{code.co_firstlineno}"

    @property
    def display_route(self) -> str:
        """The route under /api (defaults to the function name)."""
        return (self.route if self.route is not None else self.name).strip("/")

    def describe(self) -> str:
        """``'name' (file:line)``, for error messages."""
        return f"'{self.name}' ({self.location})"


_ROUTE_PARAM = re.compile(r"\{([^{}]*)\}")
_PARAM_SYNTAX = re.compile(r"^(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+)(?:\([^)]*\))?)*(\?)?$")


@dataclass(frozen=True)
class RouteParam:
    """One ``{name:constraint?}`` segment of an Azure-style route template."""

    name: str
    constraint: str | None
    optional: bool
    catch_all: bool


def parse_route_params(route: str) -> list[RouteParam]:
    """The parameters of an Azure-style route; ValueError names a malformed one."""
    params = []
    for raw in _ROUTE_PARAM.findall(route):
        match = _PARAM_SYNTAX.match(raw.strip())
        if not match:
            raise ValueError(
                f"route parameter '{{{raw}}}' is malformed; write {{name}}, "
                "{name:int}, {name?} or {*rest}"
            )
        params.append(
            RouteParam(
                name=match.group(2),
                constraint=(match.group(3) or "").lower() or None,
                optional=bool(match.group(4)),
                catch_all=bool(match.group(1)),
            )
        )
    return params


def route_shape(route: str) -> str:
    """The route with parameter names erased: routes matching the same URLs compare equal."""
    return _ROUTE_PARAM.sub("{}", route.strip("/").lower())


def _positional_params(fn: Callable[..., Any]) -> list[str]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return list(signature.parameters)


def _check_spec(spec: FunctionSpec) -> Iterable[str]:
    where = spec.describe()
    if spec.kind is None:
        yield (
            f"{where} has bindings but no trigger: add @app.route, @app.schedule, "
            "@app.orchestrator, @app.activity or @app.entity"
        )
        return
    distinct = {k for k in spec.kinds_seen}
    if len(distinct) > 1:
        kinds = " and ".join(sorted(k.value for k in distinct))
        yield f"{where} is declared as {kinds}; a function has exactly one trigger"
    params = _positional_params(spec.fn)
    if spec.client_name is not None:
        if spec.kind not in (FunctionKind.HTTP, FunctionKind.SCHEDULE):
            yield (
                f"{where}: durable_client_input works with HTTP and schedule triggers, not "
                f"{spec.kind.value}s"
            )
        elif spec.client_name not in params:
            yield (
                f"{where} has no parameter '{spec.client_name}' for "
                f"durable_client_input(client_name='{spec.client_name}')"
            )
    if spec.kind is FunctionKind.ORCHESTRATOR:
        if inspect.iscoroutinefunction(spec.fn):
            yield (
                f"orchestrator {where} is an 'async def'; orchestrators are generator functions: "
                "write 'def' and 'yield context.call_activity(...)' instead of await"
            )
        elif not inspect.isgeneratorfunction(spec.fn):
            yield (
                f"orchestrator {where} is not a generator function; it must yield tasks "
                "(result = yield context.call_activity(...)). Did you forget a 'yield'?"
            )
        if spec.context_name is not None and spec.context_name not in params:
            yield f"orchestrator {where} has no parameter '{spec.context_name}' (context_name)"
    if spec.kind is FunctionKind.ACTIVITY:
        if spec.input_name is not None and spec.input_name not in params:
            yield f"activity {where} has no parameter '{spec.input_name}' (input_name)"
        if inspect.isgeneratorfunction(spec.fn):
            yield f"activity {where} is a generator function; activities return a value"
    if spec.kind is FunctionKind.HTTP:
        try:
            parse_route_params(spec.display_route)
        except ValueError as exc:
            yield f"HTTP function {where}: {exc}"
        unknown = [m for m in spec.methods if m not in ALL_METHODS]
        if unknown:
            yield f"HTTP function {where} has unknown method(s) {', '.join(unknown)}"
    if spec.kind is FunctionKind.SCHEDULE:
        problem = validate_schedule(spec.schedule or "")
        if problem is not None:
            yield f"schedule function {where}: {problem}"


def validate_functions(specs: list[FunctionSpec]) -> list[str]:
    """Every problem with the app's bindings, each naming the function and its file:line."""
    issues: list[str] = []
    by_name: dict[str, FunctionSpec] = {}
    routes: dict[tuple[str, str], FunctionSpec] = {}
    for spec in specs:
        issues.extend(_check_spec(spec))
        previous = by_name.get(spec.name.lower())
        if previous is not None:
            issues.append(
                f"two functions are named '{spec.name}': {previous.location} and {spec.location}; "
                "function names must be unique (rename one, or pass name=...)"
            )
        else:
            by_name[spec.name.lower()] = spec
        if spec.kind is FunctionKind.HTTP:
            shape = route_shape(spec.display_route)
            for method in spec.methods:
                other = routes.get((shape, method))
                if other is not None and other is not spec:
                    issues.append(
                        f"route '{spec.display_route}' [{method}] of {spec.describe()} collides "
                        f"with route '{other.display_route}' of {other.describe()}"
                    )
                    break
                routes[(shape, method)] = spec
    return issues
