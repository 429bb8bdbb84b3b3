"""The OpenAI-compatible HTTP API: routes, the edge check, access logging and error mapping.

Each replica serves it beside gRPC, on the same engine. Every route only converts: the work
(validation, limits, cache, admission, relaying) is `Generations`' and the relay's.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seseragi.api.errors import NotReady
from seseragi.api.generations import Generations
from seseragi.api.http import completions, schemas
from seseragi.api.http.errors import error_response, from_exception
from seseragi.api.identity import SECRET_HEADER, verified_subject
from seseragi.settings import ServeSettings
from seseragi.telemetry.calls import annotate, begin
from seseragi.telemetry.http_metrics import CLIENT_CLOSED, HttpMetrics

access_log = logging.getLogger("seseragi.access")
T = TypeVar("T")
OPEN_PATHS = ("/health",)  # load balancers probe without credentials


def create_app(generations: Generations, settings: ServeSettings, metrics: HttpMetrics) -> FastAPI:
    app = FastAPI(title="Seseragi OpenAI-compatible API", docs_url=None, redoc_url=None)
    app.state.generations = generations

    app.add_middleware(EdgeAndLog, settings=settings, metrics=metrics, routes=app.router.routes)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"] if part != "body")
        return error_response(400, f"{param}: {first['msg']}", param=param or None)

    _model_routes(app, generations)

    @app.post("/v1/chat/completions")
    async def chat(body: schemas.ChatCompletionRequest, request: Request) -> Response:
        return await _complete(generations, settings, body, request)

    @app.post("/v1/completions")
    async def complete(body: schemas.CompletionRequest, request: Request) -> Response:
        return await _complete(generations, settings, body, request)

    return app


def _model_routes(app: FastAPI, generations: Generations) -> None:
    @app.get("/health")
    async def health() -> JSONResponse:
        try:
            generations.ready()
        except NotReady as exc:
            return JSONResponse({"status": str(exc)}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models() -> Response:
        try:
            return JSONResponse(schemas.ModelList(data=[_model(generations)]).model_dump())
        except Exception as exc:  # noqa: BLE001 - mapped by the one table
            return from_exception(exc, "")

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> Response:
        try:
            found = _model(generations)
        except Exception as exc:  # noqa: BLE001 - mapped by the one table
            return from_exception(exc, "")
        if found.id != model_id:
            return _not_found(model_id)
        return JSONResponse(found.model_dump())


async def _complete(
    generations: Generations, settings: ServeSettings, body: completions.Body, request: Request
) -> Response:
    request_id = request.headers.get("x-request-id", "")
    if body.user:
        annotate(user=body.user)
    try:
        subject = verified_subject(request.headers.items(), settings.edge_secret)
        call = await completions.plan(generations, body, subject, request_id)
    except completions.ModelNotFound as exc:
        return _not_found(exc.model)
    except Exception as exc:  # noqa: BLE001 - mapped by the one table
        return from_exception(exc, request_id)
    annotate(request_id=call.env.id)
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = completions.stream(call, settings.heartbeat_interval_seconds, include_usage)
        return _EventStream(
            call,
            _errors_in_stream(events, call),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-seseragi-cache": call.run.cache.outcome},
        )
    try:
        answer = await _unless_gone(request, completions.collect(call))
    except Exception as exc:  # noqa: BLE001 - mapped by the one table
        return from_exception(exc, call.env.id)
    finally:
        call.close()
    if answer is None:
        return Response(status_code=499)  # nobody is listening; the generation was aborted
    return JSONResponse(answer.model_dump(), headers={"x-seseragi-cache": call.run.cache.outcome})


async def _unless_gone(request: Request, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None once the client disconnected (the work is then cancelled, and
    closing the call aborts its generations), as a cancelled stream does."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body is already read, so only that is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _EventStream(StreamingResponse):
    """Closes the call however the stream ends. Starlette notices a client that went away only
    when a write fails and then leaves the event generator suspended, so the call is closed here
    rather than in the generator: the generations are aborted at the engine's next step."""

    def __init__(self, call: completions.Call, content: AsyncIterator[str], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._call = call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._call.close()


async def _errors_in_stream(
    events: AsyncIterator[str], call: completions.Call
) -> AsyncIterator[str]:
    """A failure after the 200 went out can only be told inside the stream, as OpenAI does."""
    try:
        async for event in events:
            yield event
    except Exception as exc:  # noqa: BLE001 - mapped by the one table
        body = from_exception(exc, call.env.id).body
        yield f"data: {bytes(body).decode()}\n\n"


def _model(generations: Generations) -> schemas.Model:
    backend = generations.ready()
    return schemas.Model(
        id=backend.info.model_id, created=0, max_model_len=backend.info.context_length
    )


def _not_found(model_id: str) -> JSONResponse:
    return error_response(
        404, f"The model {model_id!r} does not exist", param="model", code="model_not_found"
    )


class EdgeAndLog:
    """Refuse what did not come through the edge (when a secret is set); measure and log every
    request once it ended, streams included. Plain ASGI, so a client's disconnect reaches the
    stream."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ServeSettings,
        metrics: HttpMetrics,
        routes: Sequence[BaseRoute],
    ) -> None:
        self._app = app
        self._secret = settings.edge_secret.encode()
        self._edge_secret = settings.edge_secret
        self._metrics = metrics
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope["path"]
        method = scope["method"]
        route = route_template(self._routes, scope)
        record = begin(f"{method} {path}", verified_subject(headers.items(), self._edge_secret))
        response = _Response()
        started = time.perf_counter()
        try:
            with self._metrics.in_flight(method, route):
                await self._answer(scope, receive, response.watching(send), headers)
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.finished(method, route, response.status, elapsed)
            access_log.log(
                logging.DEBUG if path in OPEN_PATHS else logging.INFO,
                "http request",
                extra={
                    "method": record.method,
                    "status": response.status,
                    "duration_s": round(elapsed, 6),
                    "caller": record.caller,
                    "trace_id": record.trace_id,
                    **record.fields,
                },
            )

    async def _answer(self, scope: Scope, receive: Receive, send: Send, headers: Headers) -> None:
        proof = headers.get(SECRET_HEADER, "").encode()
        if (
            self._secret
            and scope["path"] not in OPEN_PATHS
            and not hmac.compare_digest(proof, self._secret)
        ):
            refusal = error_response(401, "call the service through the edge")
            await refusal(scope, receive, send)
        else:
            await self._app(scope, receive, send)


class _Response:
    """What went out: the status sent, or 499 when the client left before the response ended
    (a stream's 200 is already sent then, but its caller never got the whole answer)."""

    def __init__(self) -> None:
        self._status = 500  # until a status is sent: the app failed
        self._ended = False

    @property
    def status(self) -> int:
        return self._status if self._ended or self._status == 500 else CLIENT_CLOSED

    def watching(self, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                self._ended = True
            await send(message)

        return sending


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The route a request matches, as its template (`/v1/models/{model_id:path}`), so a metric
    label never holds a caller's path; "" for no route (OpenTelemetry then omits http.route)."""
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match is not Match.NONE:
            return str(getattr(candidate, "path", ""))
    return ""
