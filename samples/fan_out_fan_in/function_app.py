"""Fan-out/fan-in: run one activity per work item in parallel, then aggregate their results."""

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="fanout", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_fan_out(
    req: df.HttpRequest, client: df.DurableOrchestrationClient
) -> df.HttpResponse:
    body = req.get_json() or {}
    instance_id = await client.start_new("fan_out_fan_in", None, body.get("count", 40))
    return client.create_check_status_response(req, instance_id)


@app.orchestrator
def fan_out_fan_in(context: df.DurableOrchestrationContext):
    items = yield context.call_activity(list_work_items, context.get_input())
    tasks = [context.call_activity(measure, item) for item in items]
    sizes = yield context.task_all(tasks)
    context.set_custom_status({"processed": len(sizes)})
    total = yield context.call_activity(summarize, sizes)
    return {"items": len(items), "total": total}


@app.activity
def list_work_items(count: int) -> list[str]:
    return [f"item-{n:03d}" for n in range(count)]


@app.activity
async def measure(item: str) -> int:
    return len(item) * int(item.rsplit("-", 1)[1])


@app.activity
def summarize(sizes: list[int]) -> int:
    return sum(sizes)
