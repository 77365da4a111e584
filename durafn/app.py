"""App and Blueprint: the decorators of a function app, in durafn's and Azure's spellings.

Decorators only record a FunctionSpec and return the function unchanged, so decorated functions
stay plain callables for unit tests. Several decorators on one function merge into one spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from durafn.errors import AppValidationError, FunctionNotFoundError
from durafn.functions import (
    DEFAULT_METHODS,
    FunctionKind,
    FunctionSpec,
    validate_functions,
)
from durafn.http import AuthLevel
from durafn.replay.context import FUNCTION_NAME_ATTR

if TYPE_CHECKING:
    from durafn.client import DurableOrchestrationClient

F = TypeVar("F", bound=Callable[..., Any])


class Blueprint:
    """A collection of function definitions; register it in an App with ``register_functions``."""

    def __init__(self) -> None:
        self._specs: dict[int, FunctionSpec] = {}

    def _spec(self, fn: Callable[..., Any]) -> FunctionSpec:
        if not callable(fn):
            raise TypeError(f"durafn decorators apply to functions, not {type(fn).__name__}")
        spec = self._specs.get(id(fn))
        if spec is None:
            spec = FunctionSpec(fn=fn, name=getattr(fn, "__name__", "function"))
            self._specs[id(fn)] = spec
        return spec

    def _set_kind(
        self, fn: Callable[..., Any], kind: FunctionKind, name: str | None
    ) -> FunctionSpec:
        spec = self._spec(fn)
        spec.kind = kind
        spec.kinds_seen.append(kind)
        if name:
            spec.name = name
        if kind in (FunctionKind.ORCHESTRATOR, FunctionKind.ACTIVITY, FunctionKind.ENTITY):
            # call_activity(fn) and friends resolve a function object to its registered name
            setattr(fn, FUNCTION_NAME_ATTR, spec.name)
        return spec

    @property
    def functions(self) -> list[FunctionSpec]:
        """Every function recorded so far, in definition order."""
        return list(self._specs.values())

    def function_name(self, name: str) -> Callable[[F], F]:
        """Name the function (Azure's ``@app.function_name``); works with any trigger."""

        def decorate(fn: F) -> F:
            spec = self._spec(fn)
            spec.name = name
            if spec.kind in (FunctionKind.ORCHESTRATOR, FunctionKind.ACTIVITY, FunctionKind.ENTITY):
                setattr(fn, FUNCTION_NAME_ATTR, name)
            return fn

        return decorate

    def route(
        self,
        route: str | None = None,
        methods: Iterable[str] | str | None = None,
        auth_level: AuthLevel | str | None = None,
        trigger_arg_name: str | None = None,
        **_azure_only: Any,
    ) -> Callable[[F], F]:
        """An HTTP trigger served at ``/api/<route>`` (default: the function name); GET and POST."""

        def decorate(fn: F) -> F:
            spec = self._set_kind(fn, FunctionKind.HTTP, None)
            spec.route = route
            if methods is None:
                spec.methods = DEFAULT_METHODS
            else:
                listed = [methods] if isinstance(methods, str) else list(methods)
                spec.methods = tuple(str(getattr(m, "value", m)).upper() for m in listed)
            spec.auth_level = (
                AuthLevel(str(getattr(auth_level, "value", auth_level)).lower())
                if (auth_level is not None)
                else None
            )
            spec.trigger_arg_name = trigger_arg_name
            return fn

        return decorate

    def durable_client_input(
        self, client_name: str = "client", **_azure_only: Any
    ) -> Callable[[F], F]:
        """Inject a DurableOrchestrationClient as keyword argument ``client_name``."""

        def decorate(fn: F) -> F:
            self._spec(fn).client_name = client_name
            return fn

        return decorate

    @overload
    def orchestrator(self, fn: F) -> F: ...
    @overload
    def orchestrator(self, fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
    def orchestrator(self, fn: F | None = None, *, name: str | None = None) -> Any:
        """A generator orchestrator; the context is its first argument."""

        def decorate(f: F) -> F:
            self._set_kind(f, FunctionKind.ORCHESTRATOR, name)
            return f

        return decorate(fn) if fn is not None else decorate

    def orchestration_trigger(
        self, context_name: str = "context", orchestration: str | None = None
    ) -> Callable[[F], F]:
        """Azure spelling of :meth:`orchestrator`: the context is passed as ``context_name``."""

        def decorate(fn: F) -> F:
            self._set_kind(fn, FunctionKind.ORCHESTRATOR, orchestration).context_name = context_name
            return fn

        return decorate

    @overload
    def activity(self, fn: F) -> F: ...
    @overload
    def activity(self, fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
    def activity(self, fn: F | None = None, *, name: str | None = None) -> Any:
        """An activity, sync or ``async def``; its input is its first argument."""

        def decorate(f: F) -> F:
            self._set_kind(f, FunctionKind.ACTIVITY, name)
            return f

        return decorate(fn) if fn is not None else decorate

    def activity_trigger(
        self, input_name: str = "input", activity: str | None = None
    ) -> Callable[[F], F]:
        """Azure spelling of :meth:`activity`: the input is passed as ``input_name``."""

        def decorate(fn: F) -> F:
            self._set_kind(fn, FunctionKind.ACTIVITY, activity).input_name = input_name
            return fn

        return decorate

    def schedule(
        self,
        schedule: str,
        arg_name: str = "timer",
        run_on_startup: bool = False,
        **_azure_only: Any,
    ) -> Callable[[F], F]:
        """A cron trigger: six-field NCRONTAB, seconds first; ``arg_name`` gets the timer."""

        def decorate(fn: F) -> F:
            spec = self._set_kind(fn, FunctionKind.SCHEDULE, None)
            spec.schedule = schedule
            spec.trigger_arg_name = arg_name
            spec.run_on_startup = run_on_startup
            return fn

        return decorate

    timer_trigger = schedule

    @overload
    def entity(self, fn: F) -> F: ...
    @overload
    def entity(self, fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
    def entity(self, fn: F | None = None, *, name: str | None = None) -> Any:
        """A durable entity function; the entity context is its first argument."""

        def decorate(f: F) -> F:
            self._set_kind(f, FunctionKind.ENTITY, name)
            return f

        return decorate(fn) if fn is not None else decorate

    def entity_trigger(
        self, context_name: str = "context", entity_name: str | None = None
    ) -> Callable[[F], F]:
        """Azure spelling of :meth:`entity`."""

        def decorate(fn: F) -> F:
            self._set_kind(fn, FunctionKind.ENTITY, entity_name).context_name = context_name
            return fn

        return decorate


class App(Blueprint):
    """A function app: the functions defined on it and on the Blueprints registered in it."""

    def __init__(self, http_auth_level: AuthLevel | str = AuthLevel.FUNCTION) -> None:
        super().__init__()
        self.http_auth_level = AuthLevel(
            str(getattr(http_auth_level, "value", http_auth_level)).lower()
        )
        self._blueprints: list[Blueprint] = []

    def register_functions(self, blueprint: Blueprint) -> None:
        """Add a Blueprint's functions (including ones it defines later) to this app."""
        if blueprint is self:
            raise ValueError("an App cannot register itself")
        self._blueprints.append(blueprint)

    register_blueprint = register_functions

    @property
    def functions(self) -> list[FunctionSpec]:
        """The app's own functions followed by each registered Blueprint's."""
        specs = super().functions
        for blueprint in self._blueprints:
            specs.extend(blueprint.functions)
        return specs

    def validate(self) -> None:
        """Raise AppValidationError listing every problem with the bindings (none: returns)."""
        issues = validate_functions(self.functions)
        if issues:
            raise AppValidationError(issues)

    def get_function(self, kind: FunctionKind, name: str) -> FunctionSpec:
        """The function of ``kind`` named ``name`` (any case); FunctionNotFoundError if none."""
        wanted = name.lower()
        specs = [s for s in self.functions if s.kind is kind]
        for spec in specs:
            if spec.name.lower() == wanted:
                return spec
        raise FunctionNotFoundError(kind.value, name, [s.name for s in specs])

    def client(self, storage: str | None = None) -> DurableOrchestrationClient:
        """A durable client on ``storage`` (default: the local SQLite store), outside any host."""
        from durafn.client import DurableOrchestrationClient

        return DurableOrchestrationClient.from_storage(storage, app=self)


DFApp = App
"""Azure's name for :class:`App`."""
