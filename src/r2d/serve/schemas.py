"""Request and response bodies of the chat API (the OpenAI shapes, plus the ``r2d`` extension).

Unknown OpenAI parameters are accepted and ignored (``extra="allow"``) so any client works; the ones
that would change the reply and that r2d cannot honour (``n > 1``, tools) are rejected in ``app``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "developer", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class R2DOptions(BaseModel):
    """The request's extension object: ``extra_body={"r2d": {"policy": "hide-reasoning"}}``."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    r2d: R2DOptions | None = None

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]


# --- responses ---------------------------------------------------------------------------------
class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class StepInfo(BaseModel):
    index: int
    pivot: str | None


class R2DInfo(BaseModel):
    """What r2d adds to every reply: the policy, the steps' pivots, per-pivot probabilities (backends
    with logits), the verdict and whether the policy changed what the model answered."""

    policy: str
    steps: list[StepInfo]
    answer_pivot: str | None
    verdict: Literal["safe", "unsafe", "none"]
    policy_changed: bool
    refused: bool
    pivot_probs: list[dict[str, Any]] | None = None
    well_formed: bool
    request_id: str


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    reasoning_content: str | None = None


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    r2d: R2DInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "r2d"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """The OpenAI error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
