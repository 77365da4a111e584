"""Singleton orchestrations: at most one instance per id, however many requests race to start it."""

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{functionName}/{instanceId}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start_single(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = req.route_params["instanceId"]
    existing = await client.get_status(instance_id)
    if existing is None or existing.runtime_status in (
        df.OrchestrationRuntimeStatus.Completed,
        df.OrchestrationRuntimeStatus.Failed,
        df.OrchestrationRuntimeStatus.Terminated,
    ):
        # start_new decides atomically in the store: if another request won the race since
        # get_status, InstanceExistsError escapes and the host answers 409
        await client.start_new(req.route_params["functionName"], instance_id, req.get_json())
        return client.create_check_status_response(req, instance_id)
    return df.HttpResponse(f"An instance with ID '{instance_id}' already exists.", status_code=409)


@app.orchestrator
def nightly_job(context: df.DurableOrchestrationContext):
    """Runs until told to stop, so a second start of the same id must be refused."""
    stop = yield context.wait_for_external_event("stop")
    report = yield context.call_activity(write_report, stop)
    return report


@app.activity
def write_report(reason: str | None) -> str:
    return f"stopped: {reason}"
