"""LoadGen settings: mlperf.conf, user.conf, overrides and their compliance flags."""

from __future__ import annotations

import mlperf_loadgen as lg
import pytest

from harness.single.settings import LoadGenConfig, build_settings, check_user_conf, describe
from mlperf_llm_sut.common.errors import HarnessError

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


# -- which source each setting came from, and the demo's settings giving way to the user's -------------------------
def _conf(tmp_path, text: str):
    conf = tmp_path / "user.conf"
    conf.write_text(text)
    return conf


def test_every_setting_says_where_it_came_from(tmp_path):
    conf = _conf(tmp_path, "llama2-70b.Server.target_qps = 3.5\n*.*.max_duration = 90000\n")
    config = LoadGenConfig(scenario="Server", user_conf=conf, min_query_count=10)
    built, _ = build_settings(config, 600)
    sources = built.sources
    assert sources["ttft_latency"] == sources["qsl_rng_seed"] == "mlperf.conf"
    assert sources["server_target_qps"] == sources["max_duration_ms"] == "user.conf"
    assert sources["min_query_count"] == "--min-query-count"
    assert sources["performance_sample_count_override"] == "data set"  # 24,576 asked, 600 there
    assert sources["print_timestamps"] == "LoadGen default"
    assert set(sources) == set(describe(built.settings))


def test_a_user_conf_setting_equal_to_mlperf_conf_still_counts_as_the_users(tmp_path):
    conf = _conf(tmp_path, "llama2-70b.Offline.min_duration = 600000\n")
    built, _ = build_settings(LoadGenConfig(user_conf=conf, demo=True), FULL)
    assert built.settings.min_duration_ms == 600000
    assert built.sources["min_duration_ms"] == "user.conf"


def test_the_demo_fills_in_only_what_the_user_conf_leaves_unset(tmp_path):
    """The issue's case: the embedded model with a user.conf of 10 s and 3,000 queries ran 1 s and 600."""
    conf = _conf(tmp_path, "*.Offline.min_duration = 10000\nllama3_1-8b.*.min_query_count = 3000\n")
    config = LoadGenConfig(benchmark="llama3.1-8b", user_conf=conf, demo=True)
    built, _ = build_settings(config, 300)
    assert (built.settings.min_duration_ms, built.settings.min_query_count) == (10000, 3000)
    assert built.sources["min_duration_ms"] == built.sources["min_query_count"] == "user.conf"
    # Nothing of the user's sets the expected QPS: the demo still sizes the Offline query by calibration.
    assert built.calibrate
    assert built.non_compliant[0] == "demo settings for the embedded tiny model: the Offline query sized by calibration"


def test_without_settings_of_the_users_the_demo_sets_its_own():
    built, _ = build_settings(LoadGenConfig(scenario="Server", demo=True), 600)
    assert (built.settings.min_duration_ms, built.settings.min_query_count) == (10000, 500)
    assert built.settings.server_target_qps == 10.0
    assert {built.sources[k] for k in ("min_duration_ms", "min_query_count", "server_target_qps")} == {"demo"}
    assert not built.calibrate  # Server has a target QPS, not a calibrated query


def test_each_override_wins_over_the_demo_setting_of_the_same_name():
    config = LoadGenConfig(scenario="Server", demo=True, target_qps=4.0, min_duration_ms=2500)
    built, _ = build_settings(config, 600)
    assert (built.settings.server_target_qps, built.settings.min_duration_ms) == (4.0, 2500)
    assert built.sources["server_target_qps"] == "--target-qps"
    assert built.sources["min_duration_ms"] == "--min-duration"
    assert (built.settings.min_query_count, built.sources["min_query_count"]) == (500, "demo")
    assert "demo settings for the embedded tiny model: min_query_count 500" in built.non_compliant


def test_an_expected_qps_of_the_users_replaces_the_demos_calibration(tmp_path):
    conf = _conf(tmp_path, "llama2-70b.Offline.target_qps = 123\n")
    built, _ = build_settings(LoadGenConfig(user_conf=conf, demo=True), 600)
    assert not built.calibrate
    assert (built.settings.offline_expected_qps, built.sources["offline_expected_qps"]) == (123.0, "user.conf")
    given, _ = build_settings(LoadGenConfig(demo=True, target_qps=77.0), 600)
    assert not given.calibrate and given.sources["offline_expected_qps"] == "--target-qps"


def test_when_the_user_set_everything_the_demo_sets_nothing():
    config = LoadGenConfig(scenario="Server", demo=True, target_qps=4.0, min_duration_ms=2500, min_query_count=50)
    built, _ = build_settings(config, 600)
    assert "DEMO" not in {source.upper() for source in built.sources.values()}
    assert "the embedded tiny model, not the benchmark's" in built.non_compliant


def test_the_singlestream_demo_sets_an_expected_latency():
    built, _ = build_settings(LoadGenConfig(scenario="SingleStream", benchmark="llama3.1-8b-edge", demo=True), 300)
    assert built.settings.single_stream_expected_latency_ns == 500_000_000
    assert built.sources["single_stream_expected_latency_ns"] == "demo"


def test_a_compliance_audit_says_which_settings_its_audit_config_sets():
    built, _ = build_settings(LoadGenConfig(scenario="Offline", compliance="TEST06"), FULL)
    assert built.sources["accuracy_log_sampling_target"] == "TEST06 audit.config"
    assert built.sources["min_duration_ms"] == built.sources["min_query_count"] == "TEST06 audit.config"
