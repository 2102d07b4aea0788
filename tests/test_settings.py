"""LoadGen settings: mlperf.conf, user.conf, overrides and their compliance flags."""

from __future__ import annotations

import mlperf_loadgen as lg
import pytest

from common.errors import HarnessError
from harness.settings import LoadGenConfig, build_settings, check_user_conf, describe

FULL = 24576


def test_mlperf_conf_gives_llama2_70b_server_limits_and_seeds():
    built, warnings = build_settings(LoadGenConfig(scenario="Server"), FULL)
    s = built.settings
    assert s.ttft_latency == 2_000_000_000 and s.tpot_latency == 200_000_000
    assert s.use_token_latencies
    assert s.qsl_rng_seed == 2085463073848966840
    assert built.performance_sample_count == FULL and built.total_sample_count == FULL
    assert built.non_compliant == [] and warnings == []


def test_offline_uses_the_benchmark_query_count():
    built, _ = build_settings(LoadGenConfig(scenario="Offline"), FULL)
    assert built.settings.min_query_count == 24576
    assert built.settings.min_duration_ms == 600000


def test_user_conf_applies_over_mlperf_conf(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("# comment\nllama2-70b.Server.target_qps = 3.5\n*.Server.min_query_count = 777\n")
    built, warnings = build_settings(LoadGenConfig(scenario="Server", user_conf=conf), FULL)
    assert built.settings.server_target_qps == 3.5
    assert built.settings.min_query_count == 777
    assert built.non_compliant == [] and warnings == []


def test_overrides_are_applied_and_flagged_non_compliant():
    config = LoadGenConfig(scenario="Server", target_qps=7.0, min_duration_ms=1000, min_query_count=10)
    built, _ = build_settings(config, FULL)
    assert built.settings.server_target_qps == 7.0
    assert built.settings.min_duration_ms == 1000
    assert built.settings.min_query_count == 10
    assert built.non_compliant == ["--target-qps 7.0", "--min-duration 1000", "--min-query-count 10"]


def test_offline_target_qps_sets_expected_qps():
    built, _ = build_settings(LoadGenConfig(scenario="Offline", target_qps=12.0), FULL)
    assert built.settings.offline_expected_qps == 12.0


def test_small_dataset_caps_the_performance_sample_count_and_says_so():
    built, _ = build_settings(LoadGenConfig(), 600)
    assert built.performance_sample_count == 600
    assert built.settings.performance_sample_count_override == 600
    assert any("performance sample count 600" in reason for reason in built.non_compliant)


def test_total_sample_count_limits_the_qsl():
    built, _ = build_settings(LoadGenConfig(total_sample_count=100), 600)
    assert built.total_sample_count == 100 and built.performance_sample_count == 100
    assert "--total-sample-count 100" in built.non_compliant


def test_accuracy_mode_is_set():
    built, _ = build_settings(LoadGenConfig(mode="accuracy"), FULL)
    assert describe(built.settings)["mode"] == "AccuracyOnly"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("llama2-70b.Server.targt_qps = 1\n", "no setting 'targt_qps'. Did you mean 'target_qps'"),
        ("llama2-70b.Server.target_qps = fast\n", "must be a number"),
        ("llama2-70b.Server.target_qps 1\n", "expected 'model.scenario.key = value'"),
        ("target_qps = 1\n", "needs three parts"),
        ("llama2-70b.Sever.target_qps = 1\n", "unknown scenario 'Sever'"),
    ],
)
def test_bad_user_conf_names_the_file_line_and_fix(tmp_path, text, message):
    conf = tmp_path / "user.conf"
    conf.write_text("# first line is a comment\n" + text)
    with pytest.raises(HarnessError, match=message) as err:
        check_user_conf(conf, "llama2-70b")
    assert f"{conf} line 2" in str(err.value)


def test_missing_user_conf_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        build_settings(LoadGenConfig(user_conf=tmp_path / "user.conf"), FULL)


def test_user_conf_for_another_model_warns(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("gptj.Server.target_qps = 3\n")
    assert "sets nothing for llama2-70b, the LoadGen model key" in check_user_conf(conf, "llama2-70b")[0]


def test_unknown_scenario_is_an_error():
    with pytest.raises(HarnessError, match="unknown scenario"):
        build_settings(LoadGenConfig(scenario="MultiStream"), FULL)


def test_a_scenario_the_benchmark_lacks_names_its_scenarios():
    with pytest.raises(HarnessError, match=r"SingleStream is not a scenario of llama2-70b-99\.9: use one of Offline"):
        build_settings(LoadGenConfig(scenario="SingleStream"), FULL)


def test_singlestream_follows_the_edge_rules_and_its_target_qps_is_one_over_the_expected_latency():
    config = LoadGenConfig(scenario="SingleStream", benchmark="llama3.1-8b-edge")
    built, _ = build_settings(config, 5000)
    assert built.settings.scenario == lg.TestScenario.SingleStream
    assert built.settings.use_token_latencies and built.performance_sample_count == 5000
    assert built.non_compliant == []
    config = LoadGenConfig(scenario="SingleStream", benchmark="llama3.1-8b-edge", target_qps=4.0)
    built, _ = build_settings(config, 5000)
    assert built.settings.single_stream_expected_latency_ns == 250_000_000
    assert built.non_compliant == ["--target-qps 4.0 (an expected latency of 250 ms)"]
