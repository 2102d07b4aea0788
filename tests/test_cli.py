"""What a user sees from `python -m harness` when an input is wrong: one clear line, non-zero exit."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from mlperf_llm_sut.common.errors import HarnessError
from sut.ray_replica import _check_reachable
from tests.conftest import run_cli


def _assert_one_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_help_documents_every_option():
    code, out, _ = run_cli("--help")
    assert code == 0
    for option in (
        "--scenario",
        "--mode",
        "--model",
        "--dataset",
        "--output-dir",
        "--user-conf",
        "--target-qps",
        "--min-duration",
        "--min-query-count",
        "--total-sample-count",
        "--quantization",
        "--kv-cache-dtype",
        "--tensor-parallel-size",
        "--engine-arg",
        "--trust-pickle",
        "--replicas",
        "--dispatch",
        "--devices",
        "--cpu-bind",
        "--sut",
        "--endpoint",
        "--endpoints-file",
        "--protocol",
        "--served-model-name",
        "--token-env",
        "--token-file",
        "--ca-bundle",
        "--max-in-flight",
        "--first-token-timeout",
        "--retries",
        "--eject-after",
    ):
        assert option in out


def test_unknown_scenario(tmp_path):
    code, _, err = run_cli("--scenario", "Offlin", "--output-dir", str(tmp_path))
    assert code == 2 and "invalid choice: 'Offlin'" in err and "Traceback" not in err


def test_missing_model_dir(tmp_path):
    code, _, err = run_cli("--model", str(tmp_path / "nope"), "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "does not exist", "--model")


def test_model_dir_without_config(tmp_path):
    (tmp_path / "model").mkdir()
    code, _, err = run_cli("--model", str(tmp_path / "model"), "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "no config.json")


def test_missing_dataset(tmp_path):
    code, _, err = run_cli("--dataset", str(tmp_path / "orca.parquet"), "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "orca.parquet does not exist")


def test_dataset_with_wrong_columns(tmp_path):
    pd.DataFrame({"prompt": ["hi"], "answer": ["yo"]}).to_parquet(tmp_path / "x.parquet")
    code, _, err = run_cli("--dataset", str(tmp_path / "x.parquet"), "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "x.parquet has columns ['answer', 'prompt']", "tok_input")


def test_untrusted_pickle_dataset(tmp_path):
    pd.DataFrame({"tok_input": [[1, 2, 3]]}).to_pickle(tmp_path / "x.pkl")
    code, _, err = run_cli("--dataset", str(tmp_path / "x.pkl"), "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "--trust-pickle")


def test_dataset_tokenized_for_another_model(tmp_path):
    (tmp_path / "big.jsonl").write_text(json.dumps({"tok_input": [1, 31000, 29871]}) + "\n")
    code, _, err = run_cli("--dataset", str(tmp_path / "big.jsonl"), "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "token id 31000", "tokenized for another model")


def test_bad_user_conf(tmp_path):
    (tmp_path / "user.conf").write_text("llama2-70b.Server.target_qsp = 2\n")
    code, _, err = run_cli("--user-conf", str(tmp_path / "user.conf"), "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "line 1", "Did you mean 'target_qps'")


@pytest.mark.engine
def test_unknown_engine_arg(tmp_path):
    code, _, err = run_cli("--engine-arg", "max_num_seq=4", "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "has no field 'max_num_seq'", "Did you mean 'max_num_seqs'")


@pytest.mark.engine
def test_engine_config_vllm_rejects(tmp_path):
    code, _, err = run_cli("--max-model-len", "100000", "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "failed to start", "max_model_len")
    assert "ran out of memory" not in err  # the hint is for memory failures only


@pytest.mark.engine
def test_engine_without_enough_memory_fails_cleanly(tmp_path):
    code, _, err = run_cli("--engine-arg", "kv_cache_memory_bytes=4096", "--output-dir", str(tmp_path))
    _assert_one_error(code, err, "failed to start", "engine.log", "It ran out of memory: lower --max-model-len")


@pytest.mark.engine
@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (["--replicas", "2", "--devices", "0", "--devices", "1"], ["--devices maps GPUs", "use --cpu-bind"]),
        (["--replicas", "2", "--cpu-bind", "0"], ["--cpu-bind has 1 entries for 2 replicas"]),
        (["--cpu-bind", "zero"], ["--cpu-bind 'zero' is not a core list"]),
    ],
)
def test_a_replica_layout_that_cannot_work_is_one_error_before_any_engine_starts(tmp_path, options, needles):
    code, _, err = run_cli(*options, "--output-dir", str(tmp_path))
    _assert_one_error(code, err, *needles)
    (run_dir,) = tmp_path.iterdir()
    assert "[replica-" not in (run_dir / "engine.log").read_text()  # no worker got as far as vLLM


CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (["--endpoint", CLOSED], ["need --sut remote"]),
        (["--sut", "remote"], ["needs at least one --endpoint"]),
        (["--sut", "remote", "--endpoint", "127.0.0.1:8000"], ["is not an http(s) URL", "http://10.0.0.5:8000"]),
        (["--sut", "remote", "--endpoint", CLOSED, "--replicas", "2"], ["--replicas configure local engines"]),
        (
            ["--sut", "remote", "--endpoint", CLOSED, "--tensor-parallel-size", "2"],
            ["engine options", "ServingRuntime"],
        ),
        (["--sut", "remote", "--endpoint", CLOSED, "--token-env", "NO_SUCH_VAR_7"], ["NO_SUCH_VAR_7", "not set"]),
        (
            ["--sut", "remote", "--endpoints-file", "no-such-file.txt"],
            ["--endpoints-file no-such-file.txt does not exist"],
        ),
        (["--sut", "remote", "--endpoint", CLOSED, "--ca-bundle", "nope.pem"], ["--ca-bundle nope.pem is not a file"]),
        (["--sut", "remote", "--endpoint", CLOSED, "--max-in-flight", "0"], ["--max-in-flight must be positive"]),
        (["--sut", "remote", "--endpoint", "http://127.0.0.1:99999"], ["is not a valid URL", "ports are 1 to 65535"]),
        (["--sut", "remote", "--endpoint", "http://[::1"], ["'http://[::1' is not a valid URL"]),
        (["--sut", "remote", "--endpoint", "http://10.0.0.5:8000/v1/"], ["without it (http://10.0.0.5:8000)"]),
        (["--sut", "remote", "--endpoint", CLOSED, "--protocol", "kserve-v2"], ["--served-model-name"]),
        (
            ["--sut", "remote", "--endpoint", CLOSED, "--protocol", "tgi", "--min-new-tokens", "5"],
            ["--protocol tgi", "no minimum output length", "--min-new-tokens 5"],
        ),
    ],
)
def test_remote_options_that_cannot_work_are_one_error_before_anything_connects(tmp_path, options, needles):
    code, _, err = run_cli(*options, "--output-dir", str(tmp_path))
    _assert_one_error(code, err, *needles)


def test_each_unreachable_endpoint_is_an_error_line_of_its_own(tmp_path):
    other = "http://127.0.0.1:7"
    code, _, err = run_cli("--sut", "remote", "--endpoint", CLOSED, "--endpoint", other, "--output-dir", str(tmp_path))
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, err
    for line, url in zip(errors, (CLOSED, other), strict=True):
        assert f"({url}): cannot connect" in line and "Is the server up and the URL right?" in line


def test_a_ca_bundle_without_a_certificate_is_one_error_naming_it(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    code, _, err = run_cli(
        "--sut", "remote", "--endpoint", CLOSED, "--ca-bundle", str(bundle), "--output-dir", str(tmp_path)
    )
    _assert_one_error(code, err, f"--ca-bundle {bundle} holds no usable CA certificate")


def test_a_ray_address_with_no_cluster_is_one_error_within_seconds(tmp_path):
    """Ray alone would retry for a minute, printing its own warnings: that is past the timeout here."""
    args = ("--sut", "ray", "--ray-address", "127.0.0.1:9", "--output-dir", str(tmp_path))
    code, _, err = run_cli(*args, timeout=45)
    _assert_one_error(code, err, "--ray-address 127.0.0.1:9: nothing accepts connections there", "ray start --head")


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("ray://127.0.0.1:9", "ray_address ray://127.0.0.1:9: nothing accepts connections there"),
        ("headnode", "ray_address headnode: not a Ray address"),
        ("[::1]:9", "ray_address [::1]:9: nothing accepts connections there"),
    ],
)
def test_each_form_of_ray_address_is_checked_before_ray_tries_it(address, message):
    with pytest.raises(HarnessError, match=re.escape(message)):
        _check_reachable(address)


@pytest.mark.parametrize("command", ["rerun", "compare", "report", "sweep", "multi"])
def test_every_subcommand_shows_its_help(command, capsys):
    from harness.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m harness {command}")


@pytest.mark.parametrize(
    ("options", "setting", "option"),
    [
        ({"engine": {"tensor_parallel_size": 0}}, "tensor_parallel_size must be at least 1", "--tensor-parallel-size"),
        ({"sut": "remote"}, "at least one endpoints URL", "at least one --endpoint URL"),
        (
            {"engine_extra": {"max_model_len": 8}},
            "engine_extra max_model_len=... repeats",
            "--engine-arg max_model_len",
        ),
    ],
)
def test_a_bad_setting_is_named_as_the_library_calls_it_and_as_the_command_line_does(options, setting, option):
    from harness.cli import _options
    from harness.single.config import build_config

    with pytest.raises(HarnessError) as error:
        config = build_config(**options)
        config.engine.engine_kwargs(on_cpu=True)  # the typed/extra clash is found where the arguments are made
    assert setting in str(error.value) and "--" not in str(error.value).split(":")[0]
    assert option in error.value.render(_options())
