"""The wire format of ``molmo2 serve``: pydantic models of the OpenAI chat-completions subset we speak.

Requests: ``messages`` whose ``content`` is a string or a list of parts, ``{"type": "text"}``,
``{"type": "image_url", "image_url": {"url": ...}}`` and ``{"type": "video_url", "video_url": {"url": ...}}``
(the vLLM spelling for video). A URL is a ``data:`` URL (base64), an ``http(s)`` URL the server fetches
(with limits, ``fetch.py``; ``--no-remote-media`` turns it off) or a file path / ``file://`` URL under the
server's ``--media-dir``. Sampling:
``max_tokens`` (or ``max_completion_tokens``), ``temperature``, ``top_p``, ``top_k``, ``seed``; video
sampling: ``max_frames``, ``max_fps`` and ``clip: [start, end]`` (seconds: only that part of the video is
sampled, as ``Molmo2.ask(..., clip=...)``; the answer's timestamps are then relative to ``start``) —
molmo2 extensions, like vLLM's extra sampling fields. Fields that
OpenAI clients send but we do not use (``user``, ``frequency_penalty``...) are ignored, not refused.

Responses are OpenAI's ``chat.completion`` / ``chat.completion.chunk`` objects plus one extension:
``choices[0].message.grounding`` (in a stream: the last chunk's ``delta.grounding``) is the answer parsed
by ``molmo2.grounding`` (``GroundingResult.to_dict()``: points in pixels, tracks, count).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    """Unknown fields are dropped: clients send OpenAI fields we do not implement."""

    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------------------------------------- request


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class MediaURL(_Lenient):
    url: str = Field(min_length=1)
    detail: str | None = None  # OpenAI's image detail hint; unused


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: MediaURL


class VideoPart(_Lenient):
    type: Literal["video_url"]
    video_url: MediaURL


ContentPart = Annotated[TextPart | ImagePart | VideoPart, Field(discriminator="type")]


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1, description="one choice per request")
    stream: bool = False
    stream_options: StreamOptions | None = None
    # molmo2 extensions: video sampling
    max_frames: int | None = Field(default=None, ge=1)
    max_fps: float | None = Field(default=None, gt=0.0)
    clip: list[float] | None = Field(default=None, min_length=2, max_length=2,
                                     description="[start, end] seconds of the video to sample")


class ViewerRequest(_Lenient):
    """``POST /viewer/render`` (molmo2's web page): the media as asked about (data URLs or paths under
    ``--media-dir``; several images make an image set) and the answer's grounding to draw on them."""

    media: list[str] = Field(min_length=1)
    kind: Literal["image", "video"] = "image"
    grounding: dict[str, Any]


# --------------------------------------------------------------------------------------------- response


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    grounding: dict[str, Any] = Field(description="molmo2 extension: GroundingResult.to_dict() of the answer")


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=now)
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    grounding: dict[str, Any] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=now)
    owned_by: str = "molmo2"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(BaseModel):
    message: str
    type: str
    code: int


class ErrorResponse(BaseModel):
    """OpenAI's error envelope: ``{"error": {"message", "type", "code"}}``."""

    error: ErrorInfo
