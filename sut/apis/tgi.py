"""text-generation-inference's native API: `generate_stream` (`generate` in Offline), text in, token ids out.

TGI takes the prompt only as text, so its token ids are decoded with the
model's tokenizer (special tokens dropped: the server adds its own BOS) and the
server tokenizes it again. The answer comes back as token ids: one event per
token, each with its id, so LoadGen gets the tokens the server generated
(special ones such as EOS included, as vLLM counts them). The last event carries
`generated_text` and, with `details`, the finish reason and the server's token
count; the stream then simply ends, without a `[DONE]`, so a stream that ends
before that event was cut.

Sampling: TGI decodes greedily unless `do_sample` or a sampling setting is sent,
and rejects `temperature: 0` and `top_p: 1`, so greedy runs send neither. It has
no minimum output length; `unsupported` refuses one above 1.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from mlperf_llm_sut.common.errors import setting
from scenarios.requests import GenerationRequest
from sut.apis import APIBase, EndpointProblem, StreamError, get, get_json
from sut.generation import GenerationConfig
from sut.output_ids import Delta


class TGIGenerate(APIBase):
    end_on_eof = False  # the last event always has generated_text: a stream that ends before it was cut
    needs_tokenizer = True
    needs_model_name = False

    @staticmethod
    def unsupported(generation: GenerationConfig) -> str | None:
        if generation.min_new_tokens > 1:
            return (
                f"text-generation-inference has no minimum output length, so {setting('min_new_tokens')} "
                f"{generation.min_new_tokens} cannot be honoured; use {setting('min_new_tokens')} 1 or another "
                f"{setting('protocol')}."
            )
        return None

    def path(self, stream: bool) -> str:
        return "/generate_stream" if stream else "/generate"

    def body(self, request: GenerationRequest, max_tokens: int, stream: bool) -> dict[str, Any]:
        g = self.generation
        parameters: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "details": True,  # the finish reason and the server's token count; whole answers: every token's id
            "return_full_text": False,
            "do_sample": g.temperature > 0,
        }
        if g.temperature > 0:
            parameters["temperature"] = g.temperature
            if g.top_p < 1:
                parameters["top_p"] = g.top_p
            if g.top_k > 0:
                parameters["top_k"] = g.top_k
        if g.seed is not None:
            parameters["seed"] = g.seed
        return {"inputs": self.retokenizer.decode_prompt(request.prompt), "parameters": parameters}

    def parse(self, payload: str) -> Delta | None:
        event = json.loads(payload)
        if isinstance(event, list):  # `generate` of older servers: a list of one answer
            event = event[0]
        if "error" in event:
            raise StreamError(f"{event['error']} ({event.get('error_type', 'error')})")
        details = event.get("details") or {}
        if "token" in event:  # one streamed token
            token = event["token"]
            tokens: list[Any] = [token]
            finished = event.get("generated_text") is not None
        else:  # a whole answer: its tokens are in the details
            answer = details.get("tokens")
            if answer is None:
                raise ValueError("an answer without details.tokens")
            tokens = answer
            finished = True
        delta = Delta(
            text="".join(t["text"] for t in tokens if not t.get("special")),
            token_ids=[int(t["id"]) for t in tokens] if self.server_ids else None,
            finished=finished,
        )
        if details.get("generated_tokens") is not None:
            delta.completion_tokens = int(details["generated_tokens"])
        return delta

    async def check(self, client: httpx.AsyncClient) -> None:
        info = await get_json(
            client, "/info", what=f"a text-generation-inference server (try {setting('protocol')} openai)"
        )
        served = info.get("model_id") if isinstance(info, dict) else None
        if not isinstance(served, str):
            raise EndpointProblem("/info names no model_id: is this a text-generation-inference server?")
        if self.model is None:
            self.model = served
        elif self.model != served:
            raise EndpointProblem(
                f"it serves model {served!r}, not {self.model!r}; fix {setting('served_model_name')} or leave it out."
            )
        total = info.get("max_total_tokens")
        if isinstance(total, int) and total <= self.generation.max_new_tokens:
            raise EndpointProblem(
                f"it takes at most {total} tokens of prompt and output together (its --max-total-tokens), "
                f"which leaves no room for a prompt with {setting('max_new_tokens')} {self.generation.max_new_tokens}; "
                f"start it with a larger --max-total-tokens or lower {setting('max_new_tokens')}."
            )
        await get(client, "/health", not_found="/health does not exist there: is this text-generation-inference?")
