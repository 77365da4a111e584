"""The app ``durafn start`` serves in the "HTTP starts" shape: one route that starts a 3-step
orchestration and answers 202 with the check-status payload."""

import durafn as df
from bench.workflows import build_app

# anonymous: the benchmark measures starts, not key checks (keys are off on loopback anyway)
app = build_app(df.AuthLevel.ANONYMOUS)


@app.route(route="start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: df.HttpRequest, client: df.DurableOrchestrationClient) -> df.HttpResponse:
    """Start ``three_steps`` and answer 202 without waiting for it."""
    instance_id = await client.start_new("three_steps")
    return client.create_check_status_response(req, instance_id)
