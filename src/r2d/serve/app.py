"""The FastAPI app: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``, ``GET /metrics``.

``create_app(config, backend)`` builds it around any backend object (tests pass a mock or a tiny hf
model). Every error is an OpenAI-style JSON body: 400 bad input, 401 key, 404 model, 429 over
``max_concurrency`` (with ``Retry-After``), 500/502 when the backend fails (the server keeps serving).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from r2d.backends.base import Completion, GenParams
from r2d.infer.policies import Policy, get_policy
from r2d.pivots import UNSAFE
from r2d.reasoning import parse
from r2d.serve.config import ServeConfig
from r2d.serve.engine import Engine
from r2d.serve.guard import MessageError, guard_messages
from r2d.serve.metrics import Metrics
from r2d.serve.present import StreamFilter, View, policy_changed, present
from r2d.serve.record import JsonlRecorder
from r2d.serve.schemas import (ChatCompletion, ChatCompletionRequest, Choice, ModelCard, ModelList, R2DInfo,
                               ResponseMessage, StepInfo, Usage, error_body)

log = logging.getLogger("r2d.serve")


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.param, self.code, self.headers = status, type_, param, code, headers

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(str(self), self.type, self.param, self.code), self.status,
                            headers=self.headers)


def r2d_info(pol: Policy, c: Completion, view: View, request_id: str) -> R2DInfo:
    """The ``r2d`` extension object. A stop string cuts ``[UNSAFE]`` from the text, so a reply ended by
    it gets that pivot back here: the model did produce it."""
    text = c.full_text + (f" {UNSAFE}" if c.meta.get("stop") == UNSAFE else "")
    p = parse(text)
    pivots = p.pivots
    verdict = "unsafe" if UNSAFE in pivots else ("safe" if pivots else "none")
    return R2DInfo(policy=pol.name, steps=[StepInfo(index=i, pivot=s.pivot) for i, s in enumerate(p.steps)],
                   answer_pivot=p.answer_pivot, verdict=verdict, policy_changed=policy_changed(c, view),
                   refused=view.refused, pivot_probs=c.meta.get("pivot_probs"), well_formed=p.well_formed,
                   request_id=request_id)


def create_app(config: ServeConfig, backend: Any) -> FastAPI:
    metrics = Metrics()
    engine = Engine(backend, config.max_batch_size, config.batch_wait_ms, config.stream_chunk_chars,
                    on_batch=metrics.on_batch)
    policies = {name: get_policy(name, **config.policy_kwargs) for name in config.allowed()}
    for pol in policies.values():
        engine.check_policy(pol)  # a policy the backend cannot run fails at startup, not per request
        if type(pol).run is not Policy.run:  # e.g. r2d-n: two generation calls per reply, not batched here
            raise ValueError(f"policy {pol.name!r} generates in several calls, which r2d serve does not support "
                             f"yet; use it with r2d generate / r2d eval")
    recorder = JsonlRecorder(config.log_jsonl, config.log_messages)
    upstream = getattr(backend, "name", "") == "openai"
    state = {"admitted": 0}
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await engine.start()
        log.info("serving %s (backend %s, policy %s, allowed %s)", config.model_name, config.backend,
                 config.policy, ",".join(policies))
        try:
            yield
        finally:
            await engine.close()  # the queue drains first: in-flight requests finish
            recorder.close()
            log.info("stopped")

    app = FastAPI(title="r2d serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine, app.state.metrics, app.state.config = engine, metrics, config

    @app.exception_handler(APIError)
    async def _api_error(_: Request, e: APIError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        errs = e.errors()
        first = errs[0] if errs else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            msg = f"malformed JSON body: {first.get('msg', '')}"
        else:
            msg = f"{param or 'body'}: {first.get('msg', 'invalid')}"
        metrics.errors.labels("bad_request").inc()
        recorder.write({"request_id": request.headers.get("x-request-id"), "status": 400, "error": msg})
        return JSONResponse(error_body(msg, param=param), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException):
        return JSONResponse(error_body(str(e.detail), "invalid_request_error"), e.status_code)

    @app.exception_handler(Exception)
    async def _internal(_: Request, e: Exception):
        log.exception("internal error")
        metrics.errors.labels("internal").inc()
        return JSONResponse(error_body(f"internal error: {type(e).__name__}", "server_error"), 500)

    async def require_key(request: Request) -> None:
        if not config.api_keys:
            return
        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        msg = None
        if scheme.lower() != "bearer" or not key:
            msg = "missing API key: send 'Authorization: Bearer <key>'"
        elif not any(hmac.compare_digest(key.strip().encode(), k.encode()) for k in config.api_keys):
            msg = "invalid API key"
        if msg:
            metrics.errors.labels("auth").inc()
            recorder.write({"request_id": request.headers.get("x-request-id"), "path": request.url.path,
                            "status": 401, "error": msg})
            raise APIError(401, msg, code="invalid_api_key")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": config.model_name, "backend": config.backend, "policy": config.policy,
                "allowed_policies": list(policies), "in_flight": state["admitted"]}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models", dependencies=[Depends(require_key)])
    async def models():
        return ModelList(data=[ModelCard(id=config.model_name, created=created)]).model_dump()

    def _setup(req: ChatCompletionRequest) -> tuple[Policy, list, GenParams]:
        if req.model != config.model_name:
            raise APIError(404, f"model {req.model!r} not served here; this server serves {config.model_name!r}",
                           param="model", code="model_not_found")
        if req.n != 1:
            raise APIError(400, "n > 1 is not supported", param="n")
        if (req.model_extra or {}).get("tools"):
            raise APIError(400, "tools are not supported", param="tools")
        name = (req.r2d.policy if req.r2d else None) or config.policy
        if name not in policies:
            raise APIError(400, f"policy {name!r} is not allowed here; allowed: {', '.join(policies)}",
                           param="r2d.policy", code="policy_not_allowed")
        try:
            chat = guard_messages(req.messages)
        except MessageError as e:
            raise APIError(400, str(e), param=e.param) from None
        max_tokens = req.max_completion_tokens or req.max_tokens or config.max_tokens_default
        if max_tokens > config.max_tokens_limit:
            raise APIError(400, f"max_tokens {max_tokens} is above this server's limit {config.max_tokens_limit}",
                           param="max_tokens")
        params = GenParams(max_new_tokens=max_tokens, temperature=req.temperature or 0.0,
                           top_p=req.top_p if req.top_p is not None else 1.0, stop=req.stops(), seed=req.seed or 0)
        pol = policies[name]
        chat = pol.prepare([chat])[0]  # e.g. r2d-p: the R2D instructions as a trusted system turn
        return pol, chat, engine.run_params(params, pol)

    def _finish(rid: str, pol: Policy, stream: bool, status: int, t0: float, chat: list | None,
                c: Completion | None = None, view: View | None = None, info: R2DInfo | None = None,
                error: str | None = None) -> None:
        latency = time.perf_counter() - t0
        metrics.requests.labels(pol.name, str(stream).lower(), str(status)).inc()
        metrics.latency.labels(pol.name, str(stream).lower()).observe(latency)
        row: dict[str, Any] = {"request_id": rid, "status": status, "policy": pol.name, "stream": stream,
                               "latency_s": round(latency, 4), "error": error, "messages": chat}
        if c is not None and info is not None and view is not None:
            metrics.prompt_tokens.inc(c.prompt_tokens or 0)
            metrics.completion_tokens.inc(c.completion_tokens or 0)
            metrics.verdicts.labels(pol.name, info.verdict, str(info.policy_changed).lower()).inc()
            row.update(verdict=info.verdict, pivots=[s.pivot for s in info.steps], answer_pivot=info.answer_pivot,
                       policy_changed=info.policy_changed, refused=info.refused, finish_reason=c.finish_reason,
                       prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens,
                       pivot_probs=info.pivot_probs, raw_text=c.full_text, content=view.content,
                       reasoning_content=view.reasoning)
        recorder.write(row)
        log.info("%s policy=%s stream=%s status=%d %.3fs%s", rid, pol.name, stream, status, latency,
                 f" verdict={info.verdict} changed={info.policy_changed}" if info else f" error={error}")

    def _backend_error(c: Completion) -> APIError:
        metrics.errors.labels("backend").inc()
        status = 502 if upstream else 500
        return APIError(status, f"generation failed: {c.error}", type_="server_error", code="backend_error")

    @app.post("/v1/chat/completions", dependencies=[Depends(require_key)])
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        rid = request.headers.get("x-request-id") or f"chatcmpl-{uuid.uuid4().hex}"
        t0 = time.perf_counter()
        if state["admitted"] >= config.max_concurrency:
            metrics.errors.labels("overload").inc()
            recorder.write({"request_id": rid, "status": 429, "error": "over max_concurrency"})
            raise APIError(429, f"server busy: {config.max_concurrency} requests in flight; retry later",
                           type_="rate_limit_error", code="overloaded",
                           headers={"Retry-After": str(config.retry_after_s)})
        try:
            pol, chat, params = _setup(req)
        except APIError as e:
            metrics.errors.labels("bad_request").inc()
            recorder.write({"request_id": rid, "status": e.status, "error": str(e)})
            raise
        state["admitted"] += 1
        metrics.in_flight.inc()
        handed_over = False
        try:
            if req.stream:
                gen = engine.stream(chat, params)
                first = await gen.__anext__()  # an in-process backend has generated by now: errors get a status
                if isinstance(first, Completion) and first.error is not None:
                    err = _backend_error(first)
                    _finish(rid, pol, True, err.status, t0, chat, error=first.error)
                    raise err
                include_usage = bool(req.stream_options and req.stream_options.include_usage)
                handed_over = True
                done = {"released": False}

                def release(status: int = 200, error: str | None = None) -> None:
                    """Once per stream: from the generator's end, or after the response if it never ran
                    (a client gone before the first byte)."""
                    if not done["released"]:
                        done["released"] = True
                        state["admitted"] -= 1
                        metrics.in_flight.dec()
                        if status != 200:
                            _finish(rid, pol, True, status, t0, chat, error=error)

                async def cleanup() -> None:
                    await gen.aclose()
                    release(499, "client gone before the stream")

                return StreamingResponse(_sse(rid, pol, chat, first, gen, t0, include_usage, release),
                                         media_type="text/event-stream", headers={"x-request-id": rid},
                                         background=BackgroundTask(cleanup))
            c = await engine.complete(chat, params)
            if c.error is not None:
                err = _backend_error(c)
                _finish(rid, pol, False, err.status, t0, chat, error=c.error)
                raise err
            view = present(pol, c)
            info = r2d_info(pol, c, view, rid)
            body = ChatCompletion(
                id=rid, created=int(time.time()), model=config.model_name,
                choices=[Choice(message=ResponseMessage(content=view.content, reasoning_content=view.reasoning),
                                finish_reason="stop" if view.refused else (c.finish_reason or "stop"))],
                usage=Usage(prompt_tokens=c.prompt_tokens or 0, completion_tokens=c.completion_tokens or 0,
                            total_tokens=(c.prompt_tokens or 0) + (c.completion_tokens or 0)),
                r2d=info)
            _finish(rid, pol, False, 200, t0, chat, c, view, info)
            return JSONResponse(body.model_dump(), headers={"x-request-id": rid})
        finally:
            if not handed_over:
                state["admitted"] -= 1
                metrics.in_flight.dec()

    def _chunk(rid: str, delta: dict, finish: str | None = None, **extra: Any) -> str:
        body = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": config.model_name, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def _sse(rid: str, pol: Policy, chat: list, first: Any, gen: AsyncIterator, t0: float,
                   include_usage: bool, release: Any) -> AsyncIterator[str]:
        filt = StreamFilter(pol)
        status, c, error = 200, None, None
        try:
            yield _chunk(rid, {"role": "assistant", "content": ""})
            item = first
            while True:
                if isinstance(item, Completion):
                    c = item
                    break
                dr, dc = filt.feed(item)
                if dr:
                    yield _chunk(rid, {"reasoning_content": dr})
                if dc:
                    yield _chunk(rid, {"content": dc})
                item = await gen.__anext__()
            if c.error is not None:  # a streaming upstream failed after the headers went out
                metrics.errors.labels("backend").inc()
                status, error = 502, c.error
                yield f"data: {json.dumps(error_body(f'generation failed: {c.error}', 'server_error'))}\n\n"
                return
            dr, dc, view = filt.finish(c)
            if filt.diverged:
                log.warning("%s stream and whole-reply views differ under %s", rid, pol.name)
            if dr:
                yield _chunk(rid, {"reasoning_content": dr})
            if dc:
                yield _chunk(rid, {"content": dc})
            info = r2d_info(pol, c, view, rid)
            finish = "stop" if view.refused else (c.finish_reason or "stop")
            yield _chunk(rid, {}, finish, r2d=info.model_dump())
            if include_usage:
                usage = Usage(prompt_tokens=c.prompt_tokens or 0, completion_tokens=c.completion_tokens or 0,
                              total_tokens=(c.prompt_tokens or 0) + (c.completion_tokens or 0))
                body = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": config.model_name, "choices": [], "usage": usage.model_dump()}
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"
            _finish(rid, pol, True, 200, t0, chat, c, view, info)
            c = None  # recorded
        except BaseException as e:  # client went away (cancelled) or a bug: record it, never hang
            status, error = 499 if not isinstance(e, Exception) else 500, f"{type(e).__name__}: {e}"
            raise
        finally:
            await gen.aclose()
            release(500 if status == 200 and c is not None else status, error)

    return app
