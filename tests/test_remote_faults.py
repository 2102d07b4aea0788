"""Remote replicas under faults a real server cannot be made to produce (tests/fault_server.py).

Every run is a real LoadGen run through `harness.single.runner.run`; each ends with
every issued sample answered exactly once, and VALID only when nothing was lost.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.research.report import build_report
from harness.research.sweep import load_plan, run_sweep
from harness.single.config import build_config
from harness.single.runner import RunReport, run
from harness.single.sampling import SERIES_FILE
from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.telemetry import metrics
from mlperf_llm_sut.telemetry.loop import read_jsonl
from tests.conftest import read_samples
from tests.fault_server import FaultServer, expected_token_ids, prompt_ids_for_text

# Short Server runs: the point is what happens to the samples, not a valid latency result.
STUCK_SECONDS = 15.0
SHORT_SERVER = {"scenario": "Server", "target_qps": 40, "min_duration_ms": 2000, "total_sample_count": 120}


@pytest.fixture
def server(tokenizer):
    with FaultServer(tokenizer) as s:
        yield s


@pytest.fixture
def two_servers(tokenizer):
    with FaultServer(tokenizer, token_delay=0.004) as a, FaultServer(tokenizer, token_delay=0.004) as b:
        yield a, b


def remote_run(
    tmp_path: Path, servers: list[FaultServer], remote: dict[str, Any] | None = None, **options: Any
) -> RunReport:
    settings = {"served_model_name": "tiny", "probe_interval": 0.2, "eject_after": 1000} | (remote or {})
    # LoadGen issues every sample of the set at least once: a small set makes a short run. No minimum
    # duration: what these runs check must not depend on how fast this machine is.
    options.setdefault("total_sample_count", 200)
    options.setdefault("min_query_count", options["total_sample_count"])
    options.setdefault("min_duration_ms", 0)
    config = build_config(
        sut="remote",
        remote={"endpoints": [s.url for s in servers]} | settings,
        output_dir=tmp_path,
        save_outputs=True,
        warmup_samples=0,
        **options,
    )
    return run(config)


def assert_each_sample_answered_once(report: RunReport) -> None:
    samples = report.record.samples
    assert samples.issued == samples.completed + samples.failed
    assert samples.duplicates == 0
    assert samples.unanswered == 0


def assert_outputs_are_the_servers(report: RunReport, tokenizer, prompts) -> None:
    rows = [row for row in read_samples(report.run_dir) if "error" not in row]
    assert rows
    for row in rows:
        assert row["output_token_ids"] == expected_token_ids(tokenizer, prompts[row["qsl_idx"]], 1024)


def errors(report: RunReport, replica: int = 0) -> dict[str, int]:
    return report.record.replicas[replica].details["errors"]


def test_http_500s_before_the_first_token_are_retried_and_the_run_stays_valid(server, tmp_path, tokenizer, prompts):
    server.fail_next(5, status=500)
    report = remote_run(tmp_path, [server])

    assert report.result.valid, report.result.invalid_reasons
    assert_each_sample_answered_once(report)
    assert errors(report) == {"http_500": 5}
    assert report.record.replicas[0].details["retries"] == 5
    assert_outputs_are_the_servers(report, tokenizer, prompts)


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("missing", "the server has no /metrics (HTTP 404)"),
        ("refusing", "401"),
        ("garbage", "replica-0"),
        ("slow", "replica-0"),
    ],
)
def test_a_server_whose_metrics_are_missing_refused_slow_or_garbage_is_a_warning_not_a_failed_run(
    server, tmp_path, mode, said
):
    server.metrics(mode, delay=3.0)
    report = remote_run(tmp_path, [server], total_sample_count=40, telemetry_interval=0.2)

    assert report.result.valid, report.result.invalid_reasons
    assert_each_sample_answered_once(report)
    telemetry = report.record.telemetry
    assert telemetry is not None
    (warning,) = [line for line in telemetry.warnings if "metrics" in line]
    assert said in warning and "replica-0" in warning
    series = read_jsonl(report.run_dir / SERIES_FILE)
    # Nothing read of the server, nothing made up: the processes of the run are all there is.
    assert {reading.source for reading in series} == {"harness", "client-0 worker"}


@pytest.mark.parametrize("clients", [None, 0])
def test_a_servers_metrics_are_read_into_the_runs_telemetry(server, tmp_path, clients):
    server.metrics("tgi")
    remote = {"client_processes": clients}
    report = remote_run(tmp_path, [server], remote, total_sample_count=40, telemetry_interval=0.2)

    telemetry = report.record.telemetry
    assert telemetry is not None and not telemetry.warnings
    read = {reading.metric for reading in read_jsonl(report.run_dir / SERIES_FILE) if reading.source == "replica-0"}
    # TGI's page (tests/fault_server.py METRICS_PAGES): its queue, batch and token counters, under our names.
    assert read == {metrics.RUNNING, metrics.WAITING, metrics.PROMPT_TOKENS, metrics.GENERATION_TOKENS}
    assert server.metrics_requests


def test_429s_are_retried_after_the_servers_retry_after(server, tmp_path):
    server.fail_next(3, status=429, retry_after=0.3)
    report = remote_run(tmp_path, [server])

    assert report.result.valid, report.result.invalid_reasons
    assert errors(report) == {"http_429": 3}


def test_a_client_error_is_not_retried_and_fails_its_sample_with_the_servers_message(server, tmp_path):
    server.fail_next(2, status=400)
    report = remote_run(tmp_path, [server])

    assert not report.result.valid
    assert_each_sample_answered_once(report)
    assert report.record.samples.failed == 2
    assert report.record.replicas[0].details["retries"] == 0
    assert any("2 samples failed" in r and "HTTP 400" in r for r in report.result.invalid_reasons)


def test_a_stream_cut_after_the_first_token_fails_its_sample_and_the_run_says_why(server, tmp_path):
    server.cut_after(3, count=4)
    report = remote_run(tmp_path, [server], **SHORT_SERVER)

    assert not report.result.valid
    assert_each_sample_answered_once(report)
    assert report.record.samples.failed == 4
    assert errors(report) == {"stream_cut": 4}
    assert any("4 samples failed" in r and "connection broke mid-answer" in r for r in report.result.invalid_reasons)
    failed = [row for row in read_samples(report.run_dir) if "error" in row]
    assert len(failed) == 4 and all(row["first_token"] is not None for row in failed)


def test_an_offline_stream_cut_is_retried_because_loadgen_saw_no_token_of_it(server, tmp_path, tokenizer, prompts):
    server.cut_after(3, count=4)
    report = remote_run(tmp_path, [server])

    assert report.result.valid, report.result.invalid_reasons
    assert errors(report) == {"stream_cut": 4}
    assert_outputs_are_the_servers(report, tokenizer, prompts)


def test_a_slow_first_token_times_out_and_is_retried(server, tmp_path):
    server.first_token_delay(3.0, count=2)
    report = remote_run(tmp_path, [server], remote={"first_token_timeout": 0.5}, **SHORT_SERVER)

    assert_each_sample_answered_once(report)
    assert report.record.samples.failed == 0
    assert errors(report) == {"first_token_timeout": 2}


def test_a_server_that_never_answers_in_time_fails_every_sample_without_hanging(server, tmp_path):
    server.first_token_delay(5.0)
    remote = {"request_timeout": 0.3, "retries": 1}
    report = remote_run(tmp_path, [server], remote=remote, total_sample_count=20, min_query_count=20)

    assert not report.result.valid
    assert_each_sample_answered_once(report)
    assert report.record.samples.failed == report.record.samples.issued >= 20
    assert errors(report) == {"timeout": 2 * report.record.samples.issued}
    assert any("the answer was not complete in time (after 2 attempts)" in r for r in report.result.invalid_reasons)


# The clients in a client worker (the default) and in LoadGen's process: where a replica that goes out hands its
# work to the dispatcher across a pipe, and where it does so in one call.
CLIENTS = pytest.mark.parametrize("clients", [None, 0], ids=["in-a-client-worker", "in-loadgens-process"])


@CLIENTS
def test_a_replica_down_mid_run_is_ejected_and_readmitted_when_it_is_back(
    two_servers, tmp_path, tokenizer, prompts, clients
):
    a, b = two_servers
    back_at: list[float] = []

    def outage() -> None:
        time.sleep(1.0)
        a.down()
        time.sleep(2.0)
        back_at.append(time.monotonic())
        a.up()

    thread = threading.Thread(target=outage)
    thread.start()
    # 600 samples at 8 in flight take about 8 s: the outage falls well inside the run.
    remote = {"max_in_flight": 4, "eject_after": 3, "client_processes": clients}
    report = remote_run(tmp_path, [a, b], remote=remote, total_sample_count=600)
    thread.join()

    assert report.result.valid, report.result.invalid_reasons
    assert_each_sample_answered_once(report)
    first, second = report.record.replicas
    assert first.details["ejections"] == 1
    assert first.details["errors"] and second.details["errors"] == {}
    assert a.received_after(back_at[0]) > 0, "replica-0 got no work after it came back"
    assert_outputs_are_the_servers(report, tokenizer, prompts)
    assert first.details["client_process"] == (None if clients == 0 else "client-0")


@CLIENTS
def test_a_lone_replica_that_stays_down_is_failed_for_good_and_the_run_ends(tokenizer, tmp_path, clients):
    with FaultServer(tokenizer, token_delay=0.004) as server:

        def down_once_some_are_answered() -> None:
            # Not after a fixed time: on a loaded box the run may not have started by then.
            deadline = time.monotonic() + 60
            while server.requests < 12 and time.monotonic() < deadline:  # 4 in flight: 8 answered
                time.sleep(0.01)
            server.down()

        threading.Thread(target=down_once_some_are_answered, daemon=True).start()
        remote = {"max_in_flight": 4, "eject_after": 3, "down_timeout": 1.5, "client_processes": clients}
        report = remote_run(tmp_path, [server], remote=remote, total_sample_count=300, min_query_count=300)

    assert not report.result.valid
    assert_each_sample_answered_once(report)
    assert 0 < report.record.samples.failed < 300
    assert report.record.replicas[0].details["ejections"] == 1
    assert any("stayed out for 2 s" in r for r in report.result.invalid_reasons), report.result.invalid_reasons


def test_a_server_that_lists_its_models_but_never_generates_is_stuck_and_the_run_ends(server, tmp_path):
    """Generation hangs while /v1/models answers: the stall watchdog takes it out, the generating probe
    keeps it out, and the run ends long before the first-token timeout, every sample answered once."""
    # Long enough that only the watchdog can end the run first; short enough that the server, which lets
    # its sleeping handlers finish before it stops, does not hold the test up for long.
    server.first_token_delay(STUCK_SECONDS)
    remote = {"retries": 1, "stall_timeout": 1.0, "down_timeout": 2.0, "first_token_timeout": 600.0}
    started = time.monotonic()
    options = {"target_qps": 20, "total_sample_count": 20, "min_query_count": 20}
    report = remote_run(tmp_path, [server], remote=remote, scenario="Server", **options)

    assert time.monotonic() - started < STUCK_SECONDS - 3
    assert not report.result.valid
    assert_each_sample_answered_once(report)
    assert report.record.samples.failed == report.record.samples.issued
    assert report.record.replicas[0].details["ejections"] == 1
    assert any("returned nothing for" in r for r in report.result.invalid_reasons), report.result.invalid_reasons


def test_work_on_a_stuck_replica_moves_to_a_healthy_one(two_servers, tmp_path, tokenizer, prompts):
    a, b = two_servers
    a.first_token_delay(STUCK_SECONDS)
    remote = {"stall_timeout": 1.0, "down_timeout": 600.0, "eject_after": 1000}
    report = remote_run(tmp_path, [a, b], remote=remote, total_sample_count=60, min_query_count=60)

    assert report.result.valid, report.result.invalid_reasons
    assert_each_sample_answered_once(report)
    stuck, healthy = report.record.replicas
    assert stuck.details["ejections"] == 1 and stuck.samples == 0 and stuck.details["errors"].get("stalled", 0) > 0
    assert healthy.samples == report.record.samples.issued
    assert_outputs_are_the_servers(report, tokenizer, prompts)


def test_offline_work_queued_for_a_slow_server_moves_to_the_idle_one(tokenizer, tmp_path, prompts):
    # 16 on the wire and 20 held per replica: the slow server holds each first token for a second, so it still
    # has 4 queued long after the fast one has answered everything else.
    with FaultServer(tokenizer, token_delay=0.0005) as fast, FaultServer(tokenizer) as slow:
        slow.first_token_delay(1.0)
        report = remote_run(tmp_path, [fast, slow], remote={"max_in_flight": 16}, total_sample_count=200)
    assert_each_sample_answered_once(report)
    assert report.record.samples.failed == 0
    assert report.record.offline_stolen.get("replica-1", 0) > 0, report.record.offline_stolen
    assert_outputs_are_the_servers(report, tokenizer, prompts)


def test_retries_bound_a_samples_attempts_over_the_run_across_ejections(two_servers, tmp_path):
    a, b = two_servers
    a.fail_every(503)
    b.fail_every(503)
    remote = {"retries": 1, "eject_after": 2, "probe_interval": 0.1, "down_timeout": 2.0}
    report = remote_run(tmp_path, [a, b], remote=remote, total_sample_count=30, min_query_count=30)

    assert not report.result.valid
    assert_each_sample_answered_once(report)
    issued = report.record.samples.issued
    assert report.record.samples.failed == issued
    attempts = sum(sum(replica.details["errors"].values()) for replica in report.record.replicas)
    assert attempts <= 2 * issued


def test_requests_in_flight_stay_within_the_bound_on_reused_connections(server, tmp_path):
    report = remote_run(tmp_path, [server], remote={"max_in_flight": 3})

    assert report.result.valid, report.result.invalid_reasons
    assert server.max_concurrent <= 3
    assert server.connections <= 4  # three streams and the start-up check, kept alive and reused


def test_start_up_checks_give_one_line_per_bad_endpoint(tokenizer, server, tmp_path):
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    with FaultServer(tokenizer, model="another-model") as other:
        remote = {"endpoints": [server.url, other.url, closed], "served_model_name": "tiny"}
        with pytest.raises(HarnessError) as error:
            run(build_config(sut="remote", remote=remote, output_dir=tmp_path))

    lines = str(error.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"start-up: replica-1 ({other.url}): it does not serve model 'tiny'; it serves: another-model."
    )
    assert lines[1].startswith(f"start-up: replica-2 ({closed}): cannot connect")
    assert "Is the server up and the URL right?" in lines[1]


def test_text_only_servers_are_re_tokenized_and_cross_checked_against_usage(tokenizer, tmp_path, prompts):
    with FaultServer(tokenizer, token_ids=False) as server:
        report = remote_run(tmp_path / "exact", [server])
        server.wrong_usage(1)
        skewed = remote_run(tmp_path / "skewed", [server])

    assert report.result.valid, report.result.invalid_reasons
    assert report.record.replicas[0].details["text_outputs"] == report.record.samples.completed
    assert report.record.replicas[0].details["count_mismatches"] == 0
    assert not any("re-tokenized" in reason for reason in report.record.non_compliant)
    assert_outputs_are_the_servers(report, tokenizer, prompts)

    assert skewed.record.replicas[0].details["count_mismatches"] == skewed.record.samples.completed
    assert any("differ in length from the server's own token count" in r for r in skewed.record.non_compliant)


@pytest.mark.parametrize("options", [{}, SHORT_SERVER], ids=["Offline", "Server"])
def test_kserve_v2_runs_answer_with_the_servers_tokens(server, tmp_path, tokenizer, prompts, options):
    report = remote_run(tmp_path, [server], remote={"protocol": "kserve-v2"}, **options)

    assert_each_sample_answered_once(report)
    assert report.record.samples.failed == 0
    assert_outputs_answer_the_text_prompts(report, tokenizer, prompts)


def assert_outputs_answer_the_text_prompts(report: RunReport, tokenizer, prompts) -> None:
    """Text-in protocols: the server answered the prompt as its text, which it tokenized itself."""
    rows = read_samples(report.run_dir)
    assert rows
    for row in rows:
        text = tokenizer.decode(prompts[row["qsl_idx"]], skip_special_tokens=True)
        assert row["output_token_ids"] == expected_token_ids(tokenizer, prompt_ids_for_text(tokenizer, text), 1024)
        if row["first_token"] is not None:
            assert row["first_token"] == row["output_token_ids"][0]


@pytest.mark.parametrize("options", [{}, SHORT_SERVER], ids=["Offline", "Server"])
def test_tgi_runs_log_the_token_ids_the_server_generated(server, tmp_path, tokenizer, prompts, options):
    report = remote_run(tmp_path, [server], remote={"protocol": "tgi"}, **options)

    assert_each_sample_answered_once(report)
    assert report.record.samples.failed == 0
    assert report.record.replicas[0].details["text_outputs"] == 0  # ids as streamed, nothing re-tokenized
    assert report.record.replicas[0].details["count_mismatches"] == 0
    assert_outputs_answer_the_text_prompts(report, tokenizer, prompts)
    if not options:
        assert report.result.valid, report.result.invalid_reasons


def test_a_tgi_stream_cut_before_its_last_event_is_retried_in_offline(server, tmp_path, tokenizer, prompts):
    server.cut_after(3, count=2)
    report = remote_run(tmp_path, [server], remote={"protocol": "tgi"})

    assert report.result.valid, report.result.invalid_reasons
    assert errors(report) == {"stream_cut": 2}
    assert_outputs_answer_the_text_prompts(report, tokenizer, prompts)


def test_a_tgi_server_too_small_for_the_output_length_is_one_error_before_the_test(tokenizer, tmp_path):
    with FaultServer(tokenizer, max_total_tokens=512) as small:
        with pytest.raises(HarnessError) as error:
            remote_run(tmp_path, [small], remote={"protocol": "tgi"})
    assert str(error.value).startswith(f"start-up: replica-0 ({small.url}): it takes at most 512 tokens")
    assert "max_new_tokens 1024" in str(error.value)


def test_prompts_too_long_for_a_tgi_server_fail_with_its_validation_message(tokenizer, tmp_path, prompts):
    limit = 40 + 24  # prompts of more than 40 tokens, with --max-new-tokens 24, do not fit
    too_long = sum(
        len(prompt_ids_for_text(tokenizer, tokenizer.decode(p, skip_special_tokens=True))) > 40 for p in prompts[:50]
    )
    assert too_long > 0
    with FaultServer(tokenizer, max_total_tokens=limit) as server:
        report = remote_run(
            tmp_path, [server], remote={"protocol": "tgi"}, generation={"max_new_tokens": 24}, total_sample_count=50
        )

    assert not report.result.valid
    assert_each_sample_answered_once(report)
    assert report.record.samples.failed == too_long * report.record.samples.issued // 50
    assert report.record.replicas[0].details["retries"] == 0
    assert any("HTTP 422" in r and f"must be <= {limit}" in r for r in report.result.invalid_reasons)


def test_one_plan_runs_the_benchmark_against_each_protocol_and_the_report_names_them(server, tmp_path, prompts):
    plan = tmp_path / "backends.yaml"
    plan.write_text(
        f"""
name: backends
scenarios: [Offline]
base:
  sut: remote
  remote: {{endpoints: ["{server.url}"], served_model_name: tiny, probe_interval: 0.2}}
  total_sample_count: 50
  min_query_count: 50
  min_duration_ms: 0
  warmup_samples: 0
axes:
  remote: [{{protocol: openai}}, {{protocol: kserve-v2}}, {{protocol: tgi}}]
"""
    )
    outcome = run_sweep(load_plan(plan, output_dir=tmp_path))

    assert [entry["status"] for entry in outcome.entries] == ["done"] * 6  # performance and accuracy, each backend
    points = sorted({Path(entry["run_dir"]).parent.name for entry in outcome.entries})
    assert points == ["p01-protocol=openai", "p02-protocol=kserve-v2", "p03-protocol=tgi"]
    for entry in outcome.entries:
        record = json.loads((Path(entry["run_dir"]) / "run.json").read_text())
        assert record["config"]["remote"]["endpoints"] == [server.url]  # the axis value merged into the base
        assert record["samples"]["completed"] == record["samples"]["issued"] > 0
    report = build_report([tmp_path / "backends"], tmp_path / "report")
    assert sorted({row.configuration for row in report.rows}) == [
        "remote.protocol=kserve-v2",
        "remote.protocol=openai",
        "remote.protocol=tgi",
    ]
    assert all(row.verdict == "VALID" for row in report.rows if row.mode == "performance")


def _self_signed(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by itself, as a private cluster's CA would be unknown to the client."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


def test_tls_is_verified_by_default_and_a_ca_bundle_makes_a_private_certificate_trusted(tokenizer, tmp_path):
    cert, key = _self_signed(tmp_path)
    with FaultServer(tokenizer, tls=(cert, key)) as server:
        with pytest.raises(HarnessError, match=r"TLS verification failed: pass ca_bundle"):
            remote_run(tmp_path / "unverified", [server])
        report = remote_run(tmp_path / "verified", [server], remote={"ca_bundle": cert})

    assert server.url.startswith("https://")
    assert report.result.valid, report.result.invalid_reasons


def test_a_token_file_is_sent_and_no_credential_reaches_the_results_or_the_console(tokenizer, tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text("file-token-93e1\n")
    with FaultServer(tokenizer, api_key="file-token-93e1") as server:
        endpoint = server.url.replace("http://", "http://user:url-password-5b2c@")
        config = build_config(
            sut="remote",
            remote={"endpoints": [endpoint], "served_model_name": "tiny", "token_file": str(token_file)},
            output_dir=tmp_path / "results",
            total_sample_count=50,
            min_query_count=50,
            min_duration_ms=0,
        )
        report = run(config)

    assert report.result.valid, report.result.invalid_reasons
    assert report.record.replicas[0].details["endpoint"] == server.url
    written = [p.read_text(errors="replace") for p in report.run_dir.rglob("*") if p.is_file()]
    seen = capsys.readouterr()
    for text in [*written, seen.out, seen.err]:
        assert "file-token-93e1" not in text
        assert "url-password-5b2c" not in text
