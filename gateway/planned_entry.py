"""The planned entry of `/graphql`: a request whose document has a compiled plan
(`gateway.plans`) is answered here, before Strawberry's HTTP view, with the status,
headers, body, metrics and log line of the normal path.

`GraphQLEndpoint.__call__` calls `answer_planned` once the body is read and the caller
authenticated and rate-limited. It reads the POST's JSON (or the GET's parameters),
resolves a persisted query's hash, finds the plan and runs it. When no plan answers (no
plan for the document, or its plan gave up) the request goes on to the view with what
was found kept in the request's state (`request_data`), which the view's
`parse_http_body` takes rather than reading the body again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Send
from strawberry.http import GraphQLRequestData

from gateway.http_body import decode_json, encode_json, replay
from gateway.persisted import PersistedQueryError

if TYPE_CHECKING:
    from gateway.graphql import GraphQLEndpoint


def planned_request(
    endpoint: GraphQLEndpoint, request: Request, body: bytes
) -> dict[str, Any] | None:
    """The GraphQL request of a POST of JSON or a GET, when it is one the plans may
    answer (one operation, no streaming, not the IDE's page); None sends it the
    normal way, which answers anything else, refusals included."""
    method = request.scope["method"]
    if method == "POST":
        media = request.headers.get("content-type", "").partition(";")[0].strip()
        if media.lower() != "application/json":
            return None
    elif method != "GET":
        return None
    headers = request.headers
    if "accept" in headers and endpoint._get_stream_transport_from_headers(headers):
        return None
    try:
        if method == "POST":
            data = decode_json(body)
        else:
            if endpoint.should_render_graphql_ide(endpoint.request_adapter_class(request)):
                return None
            data = endpoint.parse_query_params(request.query_params)
    except HTTPException:
        return None
    if not isinstance(data, dict):
        return None  # a batch
    if not isinstance(data.get("query"), str | None):
        return None
    for part in ("variables", "extensions"):
        if not isinstance(data.get(part), dict | None):
            return None
    return data


async def answer_planned(
    endpoint: GraphQLEndpoint, request: Request, body: bytes, send: Send
) -> bool:
    """Answer the request by a compiled plan, before Strawberry's view: the same
    status, headers, body, metrics and log line as the normal path. False when no plan
    answers it (no plan for the document, or its plan gave up): the normal path then
    runs, the executor answering."""
    plans = endpoint.plans
    if plans is None:
        return False
    data = planned_request(endpoint, request, body)
    if data is None:
        return False
    scope, state = request.scope, request.scope["state"]
    try:
        query = await endpoint.persisted.resolve(data.get("query"), data.get("extensions"))
    except PersistedQueryError as refused:
        refusal = endpoint.persisted_refusal(refused, state["request_id"])
        await refusal(scope, replay(b""), send)
        return True
    operation_name = data.get("operationName")
    # What the normal path would parse again, were no plan to answer: it takes this.
    state["request_data"] = GraphQLRequestData(
        query=query,
        variables=data.get("variables"),
        operation_name=operation_name,
        extensions=data.get("extensions"),
        protocol="http",
    )
    plan = plans.find(query, operation_name)
    if plan is None:
        return False
    context = endpoint.new_context(state["principal"], state["request_id"])
    state["context"] = context
    started = time.perf_counter()
    result = await plan.run(context, data.get("variables"))
    if result is None:  # it gave up: the normal path answers
        state.pop("context", None)
        await context.close()
        return False
    endpoint.metrics.operation(plan.name, "query", time.perf_counter() - started)
    answer = await endpoint.process_result(request, result)
    response = Response(encode_json(answer), status_code=200, media_type="application/json")
    await response(scope, replay(b""), send)
    return True
