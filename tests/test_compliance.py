"""TEST06 built in: the official audit settings, the official checks, and outputs built to fail each one."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from accuracy.compliance import verify_test06
from harness.single.config import build_config
from harness.single.runner import run
from tests.conftest import run_cli
from tests.scripted_replica import ScriptedReplica

EOS = 2


def _entry(index: int, tokens: list[int], *, first: int | None = None, count: int | None = None) -> dict:
    data = np.asarray(tokens, dtype=np.int32)
    entry = {"seq_id": index, "qsl_idx": index, "data": data.tobytes().hex().upper()}
    if first is not None:
        entry["token_data"] = np.asarray([first], dtype=np.int32).tobytes().hex().upper()
    entry["token_count"] = len(tokens) if count is None else count
    return entry


def _verify(tmp_path, entries, *, streams=True):
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(entries))
    return verify_test06(path, first_token_reported=streams, eos_token_id=EOS, dtype="int32")


def test_good_outputs_pass_with_the_official_text(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6, EOS], first=5), _entry(1, [7], first=7)])
    assert result.passed
    assert result.text() == (
        "First token check pass: True\nEOS check pass: True\nSample length check pass: True\n"
        "TEST06 verification complete\n"
    )


def test_offline_skips_the_first_token_check(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6])], streams=False)
    assert result.passed and result.text().startswith("First token check pass: Skipped\n")


def test_a_wrong_first_token_fails_and_names_the_sample(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6], first=5), _entry(3, [8, 9], first=4)])
    assert not result.passed and result.first_token_pass is False
    assert "First token check pass: False" in result.text() and result.text().endswith("verification failed\n")
    assert any("sample 3" in failure for failure in result.failures)


def test_two_trailing_eos_tokens_fail_one_passes(tmp_path):
    assert _verify(tmp_path, [_entry(0, [5, EOS], first=5)]).eos_pass
    result = _verify(tmp_path, [_entry(0, [5, EOS], first=5), _entry(1, [5, EOS, EOS], first=5)])
    assert result.eos_pass is False and "EOS check pass: False" in result.text()
    # The official loop never looks at index 0, so [EOS, EOS] has only one EOS counted: it passes there too.
    assert _verify(tmp_path, [_entry(0, [EOS, EOS], first=EOS)]).eos_pass


def test_a_token_count_unlike_the_output_length_fails(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6, 7], first=5, count=2)])
    assert result.length_pass is False and "Sample length check pass: False" in result.text()


def test_a_missing_first_token_field_fails_as_the_official_script_does(tmp_path):
    result = _verify(tmp_path, [_entry(0, [5, 6])])
    assert result.first_token_pass is False and not result.passed


@pytest.mark.parametrize("scenario", ["Offline", "Server", "Interactive"])
def test_a_test06_run_applies_the_official_audit_and_verifies_its_outputs(tmp_path, scenario):
    config = build_config(
        scenario=scenario,
        compliance="TEST06",
        warmup_samples=0,
        output_dir=tmp_path,
        target_qps=300.0 if scenario != "Offline" else None,
    )
    report = run(config, console=Console(file=io.StringIO()), replica_factory=ScriptedReplica.factory())
    run_dir = report.run_dir
    assert run_dir.name.startswith(f"llama2-70b-99.9-{scenario}-TEST06-")
    assert (run_dir / "audit.config").read_text() == (
        "*.*.mode = 2\n*.*.accuracy_log_rng_seed = 720381539243781796\n*.*.accuracy_log_sampling_target = 100\n"
        "*.*.min_query_count = 100\n*.*.min_duration = 0\n*.*.sample_concatenate_permutation = 0\n"
    )
    effective = report.record.loadgen.effective
    assert effective["accuracy_log_sampling_target"] == 100 and effective["sample_concatenate_permutation"] is False
    assert any("Found Audit Config file" in w for w in report.record.loadgen.warnings)
    compliance = report.record.compliance
    assert compliance is not None
    assert compliance.passed and compliance.checks["samples"] >= 100
    assert compliance.checks["first_token_pass"] is (None if scenario == "Offline" else True)
    assert (run_dir / "verify_accuracy.txt").read_text().endswith("TEST06 verification complete\n")
    samples = report.record.samples
    assert samples.issued == samples.completed and samples.unanswered == 0
    assert report.result.passed


def test_a_test06_run_whose_outputs_break_a_check_exits_1(tmp_path):
    class TwoEos(ScriptedReplica):
        def _serve(self) -> None:
            while (request := self._inbox.get()) is not None:
                self._sink.completed([(request, [11, 12, EOS, EOS])])

    config = build_config(compliance="TEST06", warmup_samples=0, output_dir=tmp_path)
    report = run(config, console=Console(file=io.StringIO()), replica_factory=TwoEos.factory())
    assert report.record.compliance.checks["eos_pass"] is False and not report.result.passed
    assert "EOS check pass: False" in (report.run_dir / "verify_accuracy.txt").read_text()


def test_compliance_with_accuracy_mode_is_one_error():
    code, _, err = run_cli("--compliance", "TEST06", "--mode", "accuracy", timeout=120)
    assert code == 2 and "sets its own mode" in err and "Traceback" not in err
