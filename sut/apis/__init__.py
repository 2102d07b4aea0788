"""Wire protocols of remote replicas: how a request is written and a streamed answer read.

One module per protocol, each a `StreamAPI` named in `PROTOCOLS`: the replica
(`sut.remote_replica`) owns the connection, timeouts, retries and health; the API
only knows paths, bodies and the shape of each server-sent event. A new protocol
is one new module and one line in `PROTOCOLS`.
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING, Any, Protocol

from mlperf_llm_sut.common.errors import setting

if TYPE_CHECKING:  # the CLI imports PROTOCOLS: keep this module light
    import httpx

    from scenarios.requests import GenerationRequest
    from sut.generation import GenerationConfig
    from sut.output_ids import Delta, Retokenizer


class EndpointProblem(Exception):
    """Why an endpoint cannot serve the run, in words for the user."""


class StreamError(Exception):
    """The server reported an error inside an open stream."""


PROTOCOLS = {
    "openai": "sut.apis.openai:OpenAICompletions",
    "kserve-v2": "sut.apis.kserve_v2:KServeV2Generate",
    "tgi": "sut.apis.tgi:TGIGenerate",
}
"""`RemoteConfig.protocol` names and the `StreamAPI` class that speaks each."""


class StreamAPI(Protocol):
    model: str | None
    """The served model name; `check` fills it in when the user gave none."""
    end_on_eof: bool
    """Whether a stream that simply ends is complete (no end marker in the protocol)."""
    needs_tokenizer: bool
    """Whether prompts or outputs always pass through the local tokenizer."""
    needs_model_name: bool
    """Whether the user must name the model: the protocol has no way to list what a server serves."""

    def __init__(
        self, model: str | None, generation: GenerationConfig, retokenizer: Retokenizer, *, server_ids: bool
    ) -> None:
        """`server_ids`: read the server's output token ids where the protocol carries them."""

    @staticmethod
    def unsupported(generation: GenerationConfig) -> str | None:
        """Why the protocol cannot ask a server for these generation settings, or None."""

    def path(self, stream: bool) -> str:
        """Where generation requests go, relative to the endpoint's base URL."""

    def body(self, request: GenerationRequest, max_tokens: int, stream: bool) -> dict[str, Any]: ...

    def parse(self, payload: str) -> Delta | None:
        """One event's data, or a whole non-streamed answer; None is the protocol's end-of-stream marker."""

    async def check(self, client: httpx.AsyncClient) -> None:
        """Raise `EndpointProblem` unless the endpoint is up and serves the model."""


class APIBase:
    """What every `StreamAPI` keeps: the model name, the generation settings and the tokenizer."""

    def __init__(
        self, model: str | None, generation: GenerationConfig, retokenizer: Retokenizer, *, server_ids: bool = True
    ) -> None:
        self.model = model
        self.generation = generation
        self.retokenizer = retokenizer
        self.server_ids = server_ids

    @staticmethod
    def unsupported(generation: GenerationConfig) -> str | None:
        return None


def api_class(protocol: str) -> type[StreamAPI]:
    """The `StreamAPI` class for `protocol`, one of `PROTOCOLS`."""
    module, name = PROTOCOLS[protocol].split(":")
    api: type[StreamAPI] = getattr(importlib.import_module(module), name)
    return api


def build_api(
    protocol: str, model: str | None, generation: GenerationConfig, retokenizer: Retokenizer, *, server_ids: bool
) -> StreamAPI:
    return api_class(protocol)(model, generation, retokenizer, server_ids=server_ids)


async def get(client: httpx.AsyncClient, path: str, *, not_found: str | None = None) -> httpx.Response:
    """GET `path`, expecting 200; a refusal becomes an `EndpointProblem` that says what to do."""
    response = await client.get(path)
    if response.status_code in (401, 403):
        given = "Authorization" in client.headers
        raise EndpointProblem(
            f"{path} answered HTTP {response.status_code}: "
            + (
                f"the server rejected the bearer token; check the token given by {setting('token_env')} / "
                f"{setting('token_file')}."
                if given
                else f"the server wants a bearer token; pass it with {setting('token_env')} or {setting('token_file')}."
            )
        )
    if response.status_code == 404 and not_found:
        raise EndpointProblem(not_found)
    if response.status_code != 200:
        raise EndpointProblem(f"{path} answered HTTP {response.status_code} {error_message(response.content)}")
    return response


async def get_json(client: httpx.AsyncClient, path: str, *, what: str) -> Any:
    """GET `path` as JSON; anything else means the endpoint is not `what`."""
    response = await get(client, path, not_found=f"{path} does not exist there: is this {what}?")
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EndpointProblem(f"{path} did not answer with JSON: is this {what}?") from None


def error_message(content: bytes) -> str:
    """The server's own error text: OpenAI's `{"error": {"message"}}`, KServe's and TGI's `{"error": "..."}`, or raw."""
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return content[:200].decode(errors="replace").strip()
    error = body.get("error", body.get("detail", body)) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)[:300]
