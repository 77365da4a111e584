"""http-trigger: An HTTP function that answers GET and POST with a greeting.

FUNC answers at /api/FUNC; try:
  curl "http://127.0.0.1:7071/api/FUNC?name=Ada"
  curl -X POST http://127.0.0.1:7071/api/FUNC -d '{"name": "Ada"}'
"""

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="FUNC", methods=["GET", "POST"])
def FUNC(req: df.HttpRequest) -> df.HttpResponse:
    """Greet the caller named by the ``name`` query parameter or JSON field."""
    name = req.params.get("name")
    if not name:
        # None for an empty body; malformed JSON is answered 400
        body = req.get_json()
        name = body.get("name") if isinstance(body, dict) else None
    if not name:
        return df.HttpResponse("Pass a name in the query or a JSON body.", 400)
    return df.HttpResponse(f"Hello, {name}!")
