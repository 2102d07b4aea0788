"""What each remote protocol writes and reads, event by event (the runs against servers are in
tests/test_remote_faults.py)."""

from __future__ import annotations

import json

import pytest

from mlperf_llm_sut.common import embedded
from mlperf_llm_sut.common.errors import setting
from scenarios.requests import GenerationRequest
from sut.apis import PROTOCOLS, StreamError, build_api
from sut.apis.tgi import TGIGenerate
from sut.generation import GenerationConfig
from sut.output_ids import Retokenizer

PROMPT = [1, 450, 4996, 17354, 1701]
EOS = 2


@pytest.fixture(scope="module")
def retokenizer() -> Retokenizer:
    return Retokenizer(embedded.MODEL_DIR)


def tgi(retokenizer: Retokenizer, server_ids: bool = True, **generation: object) -> TGIGenerate:
    api = build_api("tgi", None, GenerationConfig(**generation), retokenizer, server_ids=server_ids)  # type: ignore[arg-type]
    assert isinstance(api, TGIGenerate)
    return api


def token_event(token_id: int, text: str, *, special: bool = False, last: str | None = None) -> str:
    details = {"finish_reason": "eos_token", "generated_tokens": 3, "seed": None} if last is not None else None
    token = {"id": token_id, "text": text, "logprob": -0.1, "special": special}
    return json.dumps({"index": 1, "token": token, "generated_text": last, "details": details})


def test_every_protocol_name_builds_its_api(retokenizer: Retokenizer) -> None:
    for protocol in PROTOCOLS:
        api = build_api(protocol, "tiny", GenerationConfig(), retokenizer, server_ids=True)
        assert api.model == "tiny"
        assert api.unsupported(GenerationConfig()) is None


def test_tgi_greedy_requests_send_no_sampling_setting_tgi_would_reject(retokenizer: Retokenizer) -> None:
    body = tgi(retokenizer, top_p=0.9, top_k=5).body(GenerationRequest(7, 0, PROMPT, stream=True), 64, True)

    assert body["inputs"] == retokenizer.decode_prompt(PROMPT)
    assert not body["inputs"].startswith("<s>")  # the server adds its own BOS
    assert body["parameters"] == {"max_new_tokens": 64, "details": True, "return_full_text": False, "do_sample": False}


def test_tgi_sampling_requests_carry_temperature_top_p_top_k_and_seed(retokenizer: Retokenizer) -> None:
    api = tgi(retokenizer, temperature=0.7, top_p=0.9, top_k=40, seed=3)
    parameters = api.body(GenerationRequest(7, 0, PROMPT, stream=False), 16, False)["parameters"]

    assert parameters["do_sample"] is True
    assert (parameters["temperature"], parameters["top_p"], parameters["top_k"], parameters["seed"]) == (
        0.7,
        0.9,
        40,
        3,
    )
    assert (
        "top_p"
        not in tgi(retokenizer, temperature=0.7).body(GenerationRequest(7, 0, PROMPT, False), 16, False)["parameters"]
    )  # TGI refuses top_p 1.0


def test_tgi_events_give_the_servers_ids_with_eos_and_text_without_special_tokens(retokenizer: Retokenizer) -> None:
    api = tgi(retokenizer)
    first = api.parse(token_event(450, " The"))
    eos = api.parse(token_event(EOS, "</s>", special=True, last=" The"))

    assert first is not None and (first.token_ids, first.text, first.finished) == ([450], " The", False)
    assert eos is not None and (eos.token_ids, eos.text, eos.finished) == ([EOS], "", True)
    assert eos.completion_tokens == 3
    text_only = tgi(retokenizer, server_ids=False).parse(token_event(450, " The"))
    assert text_only is not None and (text_only.token_ids, text_only.text) == (None, " The")


def test_tgi_whole_answers_are_read_from_details_in_either_shape(retokenizer: Retokenizer) -> None:
    answer = {
        "generated_text": " The end",
        "details": {
            "finish_reason": "length",
            "generated_tokens": 2,
            "tokens": [{"id": 450, "text": " The", "special": False}, {"id": 1095, "text": " end", "special": False}],
        },
    }
    for payload in (json.dumps(answer), json.dumps([answer])):
        delta = tgi(retokenizer).parse(payload)
        assert delta is not None
        assert (delta.token_ids, delta.text, delta.finished, delta.completion_tokens) == (
            [450, 1095],
            " The end",
            True,
            2,
        )
    with pytest.raises(ValueError, match=r"details\.tokens"):
        tgi(retokenizer).parse(json.dumps({"generated_text": " The end"}))


def test_tgi_error_events_carry_the_servers_message_and_type(retokenizer: Retokenizer) -> None:
    with pytest.raises(StreamError, match=r"Request failed during generation: out of memory \(generation\)"):
        tgi(retokenizer).parse(
            json.dumps({"error": "Request failed during generation: out of memory", "error_type": "generation"})
        )


def test_tgi_refuses_a_minimum_output_length_it_cannot_send() -> None:
    assert TGIGenerate.unsupported(GenerationConfig(min_new_tokens=1)) is None
    assert f"{setting('min_new_tokens')} 4" in (TGIGenerate.unsupported(GenerationConfig(min_new_tokens=4)) or "")
