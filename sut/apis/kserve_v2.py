"""KServe v2 / Open Inference Protocol generate extension: `generate(_stream)`, text in and text out.

The protocol carries text only, so the prompt's token ids are decoded with the
model's tokenizer (special tokens dropped: the server adds its own BOS when it
tokenizes) and the output text is re-tokenized locally (`sut.output_ids`).
Sampling settings go in `parameters` under vLLM's names, which KServe's and
Triton's vLLM back ends pass on. A stream simply ends: the protocol has no end
marker, so an event with `finish_reason` (where the server sends one) or the
end of the stream completes the answer.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from mlperf_llm_sut.common.errors import setting
from scenarios.requests import GenerationRequest
from sut.apis import APIBase, StreamError, get
from sut.output_ids import Delta


class KServeV2Generate(APIBase):
    end_on_eof = True
    needs_tokenizer = True
    needs_model_name = True

    def path(self, stream: bool) -> str:
        return f"/v2/models/{quote(self.model or '', safe='')}/{'generate_stream' if stream else 'generate'}"

    def body(self, request: GenerationRequest, max_tokens: int, stream: bool) -> dict[str, Any]:
        text = self.retokenizer.decode_prompt(request.prompt)
        return {"text_input": text, "parameters": self.generation.request_fields(max_tokens)}

    def parse(self, payload: str) -> Delta | None:
        event = json.loads(payload)
        if "error" in event:
            raise StreamError(str(event["error"]))
        return Delta(text=event.get("text_output") or "", finished=bool(event.get("finish_reason")))

    async def check(self, client: httpx.AsyncClient) -> None:
        assert self.model is not None, "RemoteConfig.check requires a served model name for KServe v2"
        what = f"a KServe v2 (Open Inference Protocol) server (try {setting('protocol')} openai)"
        await get(client, "/v2/health/ready", not_found=f"/v2/health/ready does not exist there: is this {what}?")
        await get(
            client,
            f"/v2/models/{quote(self.model, safe='')}/ready",
            not_found=f"model {self.model!r} is not served there; check {setting('served_model_name')}.",
        )
