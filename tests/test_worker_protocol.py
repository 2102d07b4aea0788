"""The harness <-> engine worker messages carry requests and results unchanged."""

from __future__ import annotations

import pickle

import numpy as np

from scenarios.requests import GenerationRequest
from sut.worker_protocol import Step, Submit, Withdrawn


def test_submitted_requests_arrive_unchanged():
    requests = [
        GenerationRequest(2**40 + 7, 3, [1, 29871, 31999], stream=True),
        GenerationRequest(5, 0, [1], stream=False),
        GenerationRequest(6, 24575, list(range(1, 1025)), stream=False),
    ]
    message = pickle.loads(pickle.dumps(Submit.pack(requests)))
    assert message.unpack() == requests


def test_a_step_carries_first_tokens_finished_outputs_and_failures():
    step = Step.pack(
        first=[(11, 42), (2**40 + 12, 7)],
        done=[(11, [42, 5, 2]), (13, []), (14, [31999])],
        failed=[(15, "vLLM rejected sample 4: too long")],
    )
    step = pickle.loads(pickle.dumps(step))
    assert step.first() == [(11, 42), (2**40 + 12, 7)]
    assert all(tokens.dtype == np.int32 for _, tokens in step.done())  # as LoadGen takes them, without a copy
    assert [(response_id, tokens.tolist()) for response_id, tokens in step.done()] == [
        (11, [42, 5, 2]),
        (13, []),
        (14, [31999]),
    ]
    assert step.failed == [(15, "vLLM rejected sample 4: too long")]


def test_an_empty_step_is_empty():
    step = Step.pack([], [], [])
    assert step.first() == [] and step.done() == [] and step.failed == []


def test_a_withdrawn_answer_carries_its_response_ids_or_none():
    assert pickle.loads(pickle.dumps(Withdrawn.pack([2**40 + 1, 3]))).unpack() == [2**40 + 1, 3]
    assert Withdrawn.pack([]).unpack() == []
