"""Chat models by name: `offline`, or any `provider:model` that LangChain's
`init_chat_model` reads (CHAT_MODEL, and CHAT_MODELS for the ones users may pick).

A model object holds an HTTP client, which belongs to the event loop that first used it,
so models are kept per event loop, like the checkpointer.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from .offline import OfflineChatModel
from .tools import TOOLS

OFFLINE = "offline"
# The history's budget when neither CHAT_CONTEXT_TOKENS nor the model's profile gives one.
DEFAULT_CONTEXT_TOKENS = 16_000
# Where OpenAI-compatible servers put a reasoning model's thinking in a streamed delta
# or a message: vLLM, DeepSeek and llama.cpp `reasoning_content`, Ollama and newer vLLM
# `reasoning`. OpenAI's own API streams none.
REASONING_FIELDS = ("reasoning_content", "reasoning")


class UnknownModel(ValueError):
    """A model name that is not offered (CHAT_MODELS) or that no provider reads."""


class OpenAICompatibleChat(ChatOpenAI):
    """ChatOpenAI that also keeps the reasoning an OpenAI-compatible server streams
    (ChatOpenAI reads only OpenAI's own fields), in `additional_kwargs["reasoning_content"]`
    as LangChain's DeepSeek and Ollama integrations do."""

    def _convert_chunk_to_generation_chunk(
        self, chunk: dict, default_chunk_class: type, base_generation_info: dict | None
    ) -> ChatGenerationChunk | None:
        generation = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)
        choices = chunk.get("choices") or []
        if generation is not None and choices and (reasoning := _reasoning_of(choices[0].get("delta"))):
            generation.message.additional_kwargs["reasoning_content"] = reasoning
        return generation

    def _get_request_payload(self, input_, *, stop=None, **kwargs) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        # OpenAI renamed the reply's limit max_completion_tokens; servers at another base
        # URL (vLLM, Ollama, LM Studio, llama.cpp) all read the older max_tokens.
        if self.openai_api_base and "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        return payload

    def _create_chat_result(self, response: Any, generation_info: dict | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        data = response if isinstance(response, dict) else response.model_dump()
        for generation, choice in zip(result.generations, data.get("choices") or []):
            if reasoning := _reasoning_of(choice.get("message")):
                generation.message.additional_kwargs["reasoning_content"] = reasoning
        return result


def _reasoning_of(part: dict | None) -> str:
    if not isinstance(part, dict):
        return ""
    for name in REASONING_FIELDS:
        if isinstance(value := part.get(name), str) and value:
            return value
    return ""


def check_model_name(name: str) -> str:
    """The name, if users may pick it; else UnknownModel."""
    if name not in settings.CHAT_MODELS:
        raise UnknownModel(f"'model' is one of {', '.join(settings.CHAT_MODELS)}")
    return name


def build_chat_model(name: str) -> BaseChatModel:
    """A new model object for the name, set up with the app's limits: the reply's token
    limit, the connect and read timeouts, and no retries of its own (agent.model_calls
    retries, and only while nothing of the reply was shown)."""
    if name == OFFLINE:
        return OfflineChatModel(delay_ms=settings.OFFLINE_MODEL_DELAY_MS, max_tokens=settings.CHAT_MAX_OUTPUT_TOKENS)
    provider, _, model = name.partition(":")
    if not provider or not model:
        raise UnknownModel(f"{name!r}: a model is named 'offline' or '<provider>:<model>', e.g. 'openai:gpt-4.1-mini'")
    if provider == "openai":
        return OpenAICompatibleChat(
            model=model,
            api_key=settings.OPENAI_API_KEY or "not-needed",
            base_url=settings.OPENAI_BASE_URL or None,
            streaming=True,
            stream_usage=True,
            max_tokens=settings.CHAT_MAX_OUTPUT_TOKENS,  # None: the server's own limit
            max_retries=0,
            # Unhashable on purpose: langchain-openai then makes this model its own HTTP
            # client instead of sharing a cached one across event loops.
            timeout=httpx.Timeout(settings.CHAT_STALL_TIMEOUT_SECONDS, connect=settings.CHAT_CONNECT_TIMEOUT_SECONDS),
        )
    return _init_other_provider(name)


def _limits(provider: str) -> dict:
    """The reply's limit (if set), the read timeout and no retries, as the provider's
    model names them."""
    limit = settings.CHAT_MAX_OUTPUT_TOKENS
    if provider == "ollama":
        return {"client_kwargs": {"timeout": settings.CHAT_STALL_TIMEOUT_SECONDS}, **({"num_predict": limit} if limit else {})}
    return {"timeout": settings.CHAT_STALL_TIMEOUT_SECONDS, "max_retries": 0, **({"max_tokens": limit} if limit else {})}


def _init_other_provider(name: str) -> BaseChatModel:
    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(name, **_limits(name.partition(":")[0]))
    except ImportError as error:
        raise UnknownModel(f"{name!r}: its LangChain integration is not installed ({error})") from None
    except ValueError as error:
        raise UnknownModel(f"{name!r}: {error}") from None


def context_tokens(model: BaseChatModel) -> int:
    """The history's budget: CHAT_CONTEXT_TOKENS, else the model's input limit as its
    LangChain profile knows it, else DEFAULT_CONTEXT_TOKENS."""
    if settings.CHAT_CONTEXT_TOKENS:
        return settings.CHAT_CONTEXT_TOKENS
    profile = getattr(model, "profile", None) or {}
    return profile.get("max_input_tokens") or DEFAULT_CONTEXT_TOKENS


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for turns: with the tools bound, and its token budget."""

    name: str
    model: BaseChatModel
    with_tools: Runnable
    tool_specs: list[dict]
    context_tokens: int


_models: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, LoadedModel]] = weakref.WeakKeyDictionary()


def chat_model(name: str) -> LoadedModel:
    """This event loop's model for the name (made on first use)."""
    models = _models.setdefault(asyncio.get_running_loop(), {})
    if name not in models:
        model = build_chat_model(name)
        specs = [tool.as_openai_tool() for tool in TOOLS.values()]
        models[name] = LoadedModel(name, model, model.bind_tools(specs), specs, context_tokens(model))
    return models[name]


def check_models_at_startup() -> None:
    """Every offered model can be made: a name no provider reads, or whose package is
    missing, stops the server at start rather than failing each turn."""
    for name in settings.CHAT_MODELS:
        build_chat_model(name)
