"""OpenAI-compatible `/v1/completions` (vLLM's server): token-id prompts in, token ids streamed back.

The prompt goes as a list of token ids, so the server runs exactly the prompt
LoadGen issued. vLLM returns each chunk's token ids with `return_token_ids`;
other servers ignore the field and send text, which `sut.output_ids` then
re-tokenizes. `usage` (in streams: `stream_options.include_usage`) gives the
server's token count, the cross-check for that fallback. A non-streamed answer
has the same fields as one streamed event, so one `parse` reads both.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from mlperf_llm_sut.common.errors import setting
from scenarios.requests import GenerationRequest
from sut.apis import APIBase, EndpointProblem, StreamError, get_json
from sut.output_ids import Delta


class OpenAICompletions(APIBase):
    end_on_eof = False
    needs_tokenizer = False
    needs_model_name = False

    def path(self, stream: bool) -> str:
        return "/v1/completions"

    def body(self, request: GenerationRequest, max_tokens: int, stream: bool) -> dict[str, Any]:
        body = {"model": self.model, "prompt": request.prompt, **self.generation.request_fields(max_tokens)}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        if self.server_ids:
            body["return_token_ids"] = True  # vLLM's; others ignore it or (strict ones) need --output-ids text
        return body

    def parse(self, payload: str) -> Delta | None:
        if payload == "[DONE]":
            return None
        if self.server_ids:
            delta = _vllm_token_event(payload)
            if delta is not None:
                return delta
        event = json.loads(payload)
        if "error" in event:
            error = event["error"]
            raise StreamError(error.get("message", str(error)) if isinstance(error, dict) else str(error))
        delta = Delta(token_ids=[])
        for choice in event.get("choices") or ():  # one choice: n is never set
            delta.text += choice.get("text") or ""
            ids = choice.get("token_ids") if self.server_ids else None
            if ids is None:
                delta.token_ids = None
            elif delta.token_ids is not None:
                delta.token_ids += ids
            delta.finished = delta.finished or bool(choice.get("finish_reason"))
        usage = event.get("usage")
        if usage and usage.get("completion_tokens") is not None:
            delta.completion_tokens = int(usage["completion_tokens"])
        return delta

    async def check(self, client: httpx.AsyncClient) -> None:
        listing = await get_json(
            client, "/v1/models", what=f"an OpenAI-compatible server (try {setting('protocol')} kserve-v2 or tgi)"
        )
        served = [m.get("id") for m in listing.get("data", [])] if isinstance(listing, dict) else []
        if self.model is None:
            if len(served) != 1:
                raise EndpointProblem(
                    f"it serves {len(served)} models ({', '.join(map(str, served)) or 'none'}); "
                    f"name the one to use with {setting('served_model_name')}."
                )
            self.model = served[0]
        elif self.model not in served:
            raise EndpointProblem(
                f"it does not serve model {self.model!r}; it serves: {', '.join(map(str, served)) or 'none'}. "
                f"Fix {setting('served_model_name')}."
            )


def _vllm_token_event(payload: str) -> Delta | None:
    """vLLM's streamed token event read without a JSON parser (a third of a stream's client CPU), or None
    for anything else, which `json.loads` then reads.

    Exact by JSON's grammar: a quote inside a string value is always escaped, so `"token_ids":[` and
    `"finish_reason":` occur unescaped only as keys, and once each means one choice. Only an event with no
    usage (vLLM's token events have none, or a null one, by version: the last event carries the usage) and no
    error takes this path; its text is not read, because the ids are the output."""
    if payload.count('"token_ids":[') != 1 or ('"usage":' in payload and not payload.endswith(',"usage":null}')):
        return None
    if payload.count('"finish_reason":') != 1 or '"error":' in payload:
        return None
    start = payload.index('"token_ids":[') + 13
    ids = payload[start : payload.index("]", start)]
    reason = payload.index('"finish_reason":') + 16
    try:
        token_ids = [int(i) for i in ids.split(",")] if ids else []
    except ValueError:  # not a plain list of integers after all
        return None
    return Delta(token_ids=token_ids, finished=not payload.startswith("null", reason), text_read=False)
