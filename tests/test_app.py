import pytest

import durafn as df
from durafn.functions import FunctionKind, route_shape
from durafn.replay.context import function_name


def test_both_decorator_spellings_record_the_same_kinds() -> None:
    app = df.App()

    @app.route(route="start/{name}", methods=["POST"])
    @app.durable_client_input(client_name="client")
    async def starter(req: df.HttpRequest, client: df.DurableOrchestrationClient) -> str:
        return "ok"

    @app.orchestration_trigger(context_name="ctx")
    def azure_style(ctx: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield ctx.call_activity("azure_activity", 1)

    @app.activity_trigger(input_name="value")
    def azure_activity(value: int) -> int:
        return value

    @app.orchestrator(name="renamed")
    def native(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        yield context.call_activity(azure_activity)

    app.validate()
    kinds = {s.name: s.kind for s in app.functions}
    assert kinds == {
        "starter": FunctionKind.HTTP,
        "azure_style": FunctionKind.ORCHESTRATOR,
        "azure_activity": FunctionKind.ACTIVITY,
        "renamed": FunctionKind.ORCHESTRATOR,
    }
    starter_spec = app.get_function(FunctionKind.HTTP, "starter")
    assert starter_spec.client_name == "client"
    assert starter_spec.methods == ("POST",)
    assert app.get_function(FunctionKind.ORCHESTRATOR, "azure_style").context_name == "ctx"
    assert app.get_function(FunctionKind.ACTIVITY, "azure_activity").input_name == "value"
    # decorated functions stay plain callables, and function objects resolve to registered names
    assert azure_activity(3) == 3
    assert function_name(native) == "renamed"
    assert function_name(azure_activity) == "azure_activity"


def test_route_defaults_to_get_and_post_and_the_function_name() -> None:
    app = df.App()

    @app.route()
    def hello(req: df.HttpRequest) -> str:
        return "hi"

    spec = app.functions[0]
    assert spec.methods == ("GET", "POST")
    assert spec.display_route == "hello"


def test_blueprint_functions_are_registered_even_when_defined_later() -> None:
    app = df.App()
    bp = df.Blueprint()
    app.register_functions(bp)

    @bp.activity
    def late(x: int) -> int:
        return x

    assert [s.name for s in app.functions] == ["late"]
    assert app.get_function(FunctionKind.ACTIVITY, "LATE").fn is late


def test_validation_reports_every_problem_with_function_and_file() -> None:
    app = df.App()

    @app.orchestrator
    def not_a_generator(context: df.DurableOrchestrationContext) -> int:
        return 1

    @app.orchestrator
    async def async_orchestrator(context: df.DurableOrchestrationContext) -> None:
        return None

    @app.activity(name="dup")
    def first(x: int) -> int:
        return x

    @app.activity(name="dup")
    def second(x: int) -> int:
        return x

    @app.route(route="items/{id}")
    def a(req: df.HttpRequest) -> str:
        return ""

    @app.route(route="items/{other}", methods=["GET"])
    def b(req: df.HttpRequest) -> str:
        return ""

    @app.route(route="nope")
    @app.durable_client_input(client_name="missing")
    def c(req: df.HttpRequest) -> str:
        return ""

    @app.durable_client_input()
    def no_trigger(client: df.DurableOrchestrationClient) -> None:
        return None

    with pytest.raises(df.AppValidationError) as caught:
        app.validate()
    issues = caught.value.issues
    text = str(caught.value)
    assert len(issues) == 6, issues
    assert "'not_a_generator'" in text and "forget a 'yield'" in text
    assert "'async_orchestrator'" in text and "async def" in text
    assert "two functions are named 'dup'" in text
    assert "collides" in text and "'items/{other}'" in text
    assert "no parameter 'missing'" in text
    assert "'no_trigger'" in text and "no trigger" in text
    assert __file__ in text  # every issue names the file


def test_unknown_function_lookup_names_the_known_ones() -> None:
    app = df.App()

    @app.activity
    def known(x: int) -> int:
        return x

    with pytest.raises(df.FunctionNotFoundError) as raised:
        app.get_function(FunctionKind.ACTIVITY, "unknown")
    assert str(raised.value).endswith("add @app.activity to the function. Known activities: known.")


def test_unknown_http_function_names_the_route_decorator() -> None:
    app = df.App()

    @app.route(route="known")
    def known(req: df.HttpRequest) -> df.HttpResponse:
        return df.HttpResponse("")

    with pytest.raises(df.FunctionNotFoundError) as raised:
        app.get_function(FunctionKind.HTTP, "unknown")
    assert str(raised.value) == (
        "no HTTP function named 'unknown' is registered in the function app; check the name or "
        "add @app.route to the function. Known HTTP functions: known."
    )


def test_route_shapes_ignore_parameter_names() -> None:
    assert route_shape("/a/{x}/b") == route_shape("a/{y}/b/")
    assert route_shape("a/{x}") != route_shape("a/x")


def test_malformed_route_parameter_is_a_validation_issue() -> None:
    app = df.App()

    @app.route(route="bad/{not valid}")
    def handler(req: df.HttpRequest) -> str:
        return ""

    with pytest.raises(df.AppValidationError, match="malformed"):
        app.validate()
