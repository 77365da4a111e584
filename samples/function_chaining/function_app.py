"""Function chaining: an HTTP starter, an orchestrator that calls three activities in sequence."""

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{functionName}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: df.HttpRequest, client: df.DurableOrchestrationClient) -> df.HttpResponse:
    instance_id = await client.start_new(
        req.route_params["functionName"], req.route_params.get("instanceId"), req.get_json()
    )
    return client.create_check_status_response(req, instance_id)


@app.orchestrator
def hello_sequence(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("say_hello", "Tokyo")
    second = yield context.call_activity(say_hello, "Seattle")
    third = yield context.call_activity(say_hello, "London")
    return [first, second, third]


@app.activity
def say_hello(city: str) -> str:
    return f"Hello {city}!"
