"""``r2d serve``: flags -> ``ServeConfig`` + backend -> uvicorn. Nothing heavy is imported at import time."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

# Idle keep-alive connections are closed after this long. uvicorn's 5 s default races with busy clients
# that reuse a connection just as it is closed (a failed request); 30 s makes that rare.
KEEP_ALIVE_S = 30


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible chat server with R2D policies (FastAPI + uvicorn)")
    p.add_argument("--model", default=None, help="alias, local path or Hub id (default smollm2-135m); with "
                   "--backend openai the upstream's model name; with --backend mock an optional rules JSON")
    p.add_argument("--served-model-name", default=None, help="the id clients send as 'model' (default: --model)")
    p.add_argument("--backend", default="hf", help="hf | vllm | openai (proxy, needs --upstream) | mock")
    p.add_argument("--upstream", default=None, help="--backend openai: base URL of the OpenAI-compatible "
                   "server to put r2d in front of (e.g. vLLM, http://10.0.0.5:8000/v1)")
    p.add_argument("--upstream-api-key", default=None, help="key for the upstream (default $R2D_UPSTREAM_API_KEY)")
    p.add_argument("--policy", default="refuse-on-unsafe", help="default policy: raw | hide-reasoning | "
                   "drop-unsafe-steps | refuse-on-unsafe | pivot-threshold (default refuse-on-unsafe)")
    p.add_argument("--allow-policy", action="append", default=[], metavar="P",
                   help="another policy a request may choose with {'r2d': {'policy': P}} (repeatable)")
    p.add_argument("--tau", type=float, default=0.5, help="pivot-threshold: force [UNSAFE] when P([UNSAFE]) >= tau")
    p.add_argument("--refusal", default=None, help="refusal text of the refusing policies")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (default $R2D_SERVE_API_KEY)")
    g.add_argument("--api-key-file", default=None, help="file with accepted keys, one per line")
    p.add_argument("--max-concurrency", type=int, default=256, help="requests admitted at once; more get 429")
    p.add_argument("--max-batch-size", type=int, default=8, help="in-process backends: requests per generate call "
                   "(1 = batching off)")
    p.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long a batch waits to fill")
    p.add_argument("--max-tokens", type=int, default=512, help="default max_tokens of a request")
    p.add_argument("--max-tokens-limit", type=int, default=2048, help="requests asking for more get 400")
    p.add_argument("--log-jsonl", default=None, help="append one JSON line per request (verdicts, texts)")
    p.add_argument("--no-log-messages", action="store_true", help="--log-jsonl without messages and texts")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)


def build(args: argparse.Namespace) -> tuple[Any, Any]:
    """(ServeConfig, backend) from the flags; validates before loading any model."""
    from r2d.backends.base import get_backend
    from r2d.registry import names
    from r2d.serve.config import ServeConfig

    for pol in [args.policy, *args.allow_policy]:
        if pol not in names("policy"):
            raise ValueError(f"--policy/--allow-policy {pol!r}: unknown; known: {', '.join(names('policy'))}")
    if args.max_concurrency < 1 or args.max_batch_size < 1:
        raise ValueError("--max-concurrency and --max-batch-size must be >= 1")
    keys: list[str] = []
    if args.api_key_file:
        keys = ServeConfig.read_keys(args.api_key_file)
    elif args.api_key or os.environ.get("R2D_SERVE_API_KEY"):
        keys = [args.api_key or os.environ["R2D_SERVE_API_KEY"]]
    if args.host not in ("127.0.0.1", "localhost", "::1") and not keys:
        print(f"r2d serve: warning: binding {args.host} without an API key", file=sys.stderr)
    policy_kwargs: dict[str, Any] = {"tau": args.tau}
    if args.refusal is not None:
        policy_kwargs["refusal"] = args.refusal
    if args.backend == "openai":
        if not args.upstream:
            raise ValueError("--backend openai needs --upstream URL (the OpenAI-compatible server to front)")
        from r2d.serve.upstream import UpstreamBackend

        backend = UpstreamBackend(model=args.model, base_url=args.upstream, guard=True, max_retries=1,
                                  api_key=args.upstream_api_key or os.environ.get("R2D_UPSTREAM_API_KEY"),
                                  concurrency=args.max_concurrency)
    elif args.backend == "hf":
        backend = get_backend("hf", model=args.model, dtype=args.dtype, device=args.device, progress=False)
    elif args.backend == "vllm":
        backend = get_backend("vllm", model=args.model, dtype=args.dtype)
    else:
        backend = get_backend(args.backend, model=args.model)
    served = args.served_model_name or args.model or getattr(backend, "model_name", None) or args.backend
    cfg = ServeConfig(model_name=served, backend=args.backend, policy=args.policy, allowed_policies=args.allow_policy,
                      policy_kwargs=policy_kwargs, api_keys=keys, host=args.host, port=args.port,
                      max_concurrency=args.max_concurrency, max_batch_size=args.max_batch_size,
                      batch_wait_ms=args.batch_wait_ms, max_tokens_default=args.max_tokens,
                      max_tokens_limit=args.max_tokens_limit, log_jsonl=args.log_jsonl,
                      log_messages=not args.no_log_messages)
    return cfg, backend


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from r2d.serve.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg, backend = build(args)
    app = create_app(cfg, backend)
    print(f"r2d serve: {cfg.model_name} on http://{cfg.host}:{cfg.port}/v1 (policy {cfg.policy})", file=sys.stderr)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=args.log_level.lower(),
                timeout_graceful_shutdown=int(cfg.graceful_timeout_s), timeout_keep_alive=KEEP_ALIVE_S)
    return 0
