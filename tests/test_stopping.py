"""A run can always be stopped: real signals at each phase of real runs, in a process of its own.

Each test asserts the exit code (130 for SIGINT, 143 for SIGTERM), that the process ended within seconds,
that run.json says when it was interrupted, that every issued sample was answered exactly once, and that
no process of the run (engine worker, scoring worker) is left.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from accuracy.scoring import score_texts
from mlperf_llm_sut.common.stopping import Interrupted, StopSignals
from tests.fault_server import FaultServer
from tests.harness_process import HarnessProcess, stop_run

REMOTE = ("--sut", "remote", "--served-model-name", "tiny")
SMALL = ("--total-sample-count", "50", "--min-query-count", "50", "--min-duration", "0")
LONG = ("--min-duration", "60000")
LOADGEN_STARTED = "*/mlperf_log_detail.txt"
WORKER_SPAWNED = "*/engine.log"


@pytest.fixture
def hung_server(tokenizer):
    """Lists its model, takes every generation request, and never answers one."""
    with FaultServer(tokenizer) as server:
        server.first_token_delay(3600)
        yield server


# -- remote replicas: no engine to start, so these are quick -------------------------------------------
def test_ctrl_c_during_warm_up_against_a_server_that_never_answers(hung_server, tmp_path):
    run = stop_run(*REMOTE, "--endpoint", hung_server.url, *SMALL, output_dir=tmp_path, when="line:up in", delay=0.5)
    assert run.code == 130
    assert run.record["interrupted"] == {"signal": "SIGINT", "phase": "warm-up"}
    assert run.record["samples"]["issued"] == 0
    assert run.record["result"]["valid"] is False
    assert "interrupted by SIGINT during warm-up" in run.stdout


def test_ctrl_c_during_the_test_against_a_server_that_never_answers_fails_every_open_sample(hung_server, tmp_path):
    args = (*REMOTE, "--endpoint", hung_server.url, "--warmup-samples", "0", *SMALL)
    run = stop_run(*args, output_dir=tmp_path, when=LOADGEN_STARTED, delay=1.0)
    assert run.code == 130
    assert run.record["interrupted"] == {"signal": "SIGINT", "phase": "the LoadGen test"}
    assert run.record["samples"]["issued"] == 50  # Offline: every sample in one query
    assert run.record["samples"]["completed"] == 0
    assert run.record["result"]["invalid_reasons"][0] == "the run was interrupted by SIGINT during the LoadGen test"


def test_sigterm_in_a_server_scenario_run_ends_it_without_waiting_for_loadgens_schedule(hung_server, tmp_path):
    # LoadGen would go on issuing for a minute: it has no abort, so the run ends without it.
    args = (*REMOTE, "--endpoint", hung_server.url, "--warmup-samples", "0", "--scenario", "Server", *LONG)
    run = stop_run(*args, output_dir=tmp_path, when=LOADGEN_STARTED, delay=2.0, signum=signal.SIGTERM)
    assert run.code == 143
    assert run.record["interrupted"]["signal"] == "SIGTERM"
    assert run.record["samples"]["issued"] > 0
    assert run.record["samples"]["completed"] == 0


def test_a_second_ctrl_c_exits_at_once(hung_server, tmp_path):
    args = (*REMOTE, "--endpoint", hung_server.url, "--warmup-samples", "0", "--scenario", "Server", *LONG)
    with HarnessProcess(*args, output_dir=tmp_path) as run:
        run.wait_for_file(LOADGEN_STARTED)
        run.ctrl_c()
        run.wait_for_line("a second one exits at once")
        run.ctrl_c()
        assert run.ended(within=5) == 130
    assert "SIGINT again: exiting now" in run.stderr


@pytest.mark.parametrize(
    ("stop", "signum"),
    [("ctrl-c", signal.SIGINT), ("kill-multi", signal.SIGTERM)],
    ids=["ctrl-c-reaches-each-run", "a-killed-multi-stops-each-run"],
)
def test_stopping_multi_stops_each_of_its_runs_which_each_say_so(hung_server, tmp_path, stop, signum):
    """Each run of a plan is a process group of its own, out of the terminal's reach: multi passes Ctrl-C on,
    and if multi itself is killed outright, the kernel sends each run SIGTERM."""
    remote = f"sut: remote, remote: {{endpoints: ['{hung_server.url}'], served_model_name: tiny}}, warmup_samples: 0"
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: hung\nruns:\n"
        f"  offline: {{{remote}, total_sample_count: 50, min_query_count: 50, min_duration_ms: 0}}\n"
        f"  server: {{{remote}, scenario: Server, min_duration_ms: 60000}}\n"
    )
    with HarnessProcess("multi", str(plan), output_dir=tmp_path) as multi:
        for name in ("offline", "server"):
            multi.wait_for_file(f"hung/together/{name}/{LOADGEN_STARTED}", timeout=120)
        time.sleep(1.0)
        if stop == "ctrl-c":
            multi.ctrl_c()
            assert multi.ended() == 130
        else:
            multi.proc.kill()
            multi.ended()  # its runs end too, within seconds

    assert not (tmp_path / "hung" / "alone").exists()  # nothing more starts after the signal
    for name in ("offline", "server"):
        # A killed multi is gone at once; its runs, sent SIGTERM by the kernel, finish within seconds.
        deadline = time.monotonic() + 20
        while not (found := list((tmp_path / "hung" / "together" / name).glob("*/run.json"))):
            assert time.monotonic() < deadline, f"run {name} wrote no run.json within 20 s of the kill"
            time.sleep(0.2)
        (run_json,) = found
        record = json.loads(run_json.read_text())
        assert record["interrupted"] == {"signal": signum.name, "phase": "the LoadGen test"}
        samples = record["samples"]
        assert samples["issued"] > 0 and samples["issued"] == samples["failed"]
    if stop == "ctrl-c":
        report = json.loads((tmp_path / "hung" / "multi.json").read_text())
        assert [row["name"] for row in report["runs"]] == ["offline", "server"]


# -- in-process engines ----------------------------------------------------------------------------------
@pytest.mark.engine
@pytest.mark.parametrize("delay", [0.0, 3.0], ids=["as-the-worker-spawns", "while-the-engine-loads"])
def test_sigterm_during_engine_start_up_leaves_no_worker(tmp_path, delay):
    run = stop_run(output_dir=tmp_path, when=WORKER_SPAWNED, delay=delay, signum=signal.SIGTERM)
    assert run.code == 143
    assert run.record["interrupted"] == {"signal": "SIGTERM", "phase": "start-up"}
    assert "interrupted by SIGTERM during start-up" in run.stdout


@pytest.mark.engine
def test_ctrl_c_while_two_replicas_load_their_engines_stops_both(tmp_path):
    run = stop_run("--replicas", "2", output_dir=tmp_path, when=WORKER_SPAWNED, delay=3.0)
    assert run.code == 130
    assert run.record["interrupted"] == {"signal": "SIGINT", "phase": "start-up"}
    assert [replica["name"] for replica in run.record["replicas"]] == ["replica-0", "replica-1"]


@pytest.mark.engine
def test_ctrl_c_during_an_offline_test_answers_every_sample_and_exits_130(tmp_path):
    # A 10 s minimum duration: the Offline query is sized from the calibration to outlast it (about 30 s here).
    run = stop_run("--min-duration", "10000", output_dir=tmp_path, when=LOADGEN_STARTED, delay=6.0)
    assert run.code == 130
    assert run.record["interrupted"] == {"signal": "SIGINT", "phase": "the LoadGen test"}
    samples = run.record["samples"]
    assert samples["completed"] > 0 and samples["failed"] > 0
    assert run.record["result"]["valid"] is False
    assert run.record["replicas"][0]["samples"] >= samples["completed"]


@pytest.mark.engine
def test_ctrl_c_during_warm_up_stops_the_engine_mid_warm_up(tmp_path):
    # 0.3 s after start-up is well into a warm-up that takes seconds here.
    run = stop_run("--warmup-samples", "600", output_dir=tmp_path, when="line:up in", delay=0.3)
    assert run.code == 130
    assert run.record["interrupted"] == {"signal": "SIGINT", "phase": "warm-up"}
    assert run.record["samples"]["issued"] == 0


@pytest.mark.engine
def test_sigterm_during_an_interactive_test_with_an_engine_exits_143(tmp_path):
    args = ("--scenario", "Interactive", *LONG)
    run = stop_run(*args, output_dir=tmp_path, when=LOADGEN_STARTED, delay=2.0, signum=signal.SIGTERM)
    assert run.code == 143
    assert run.record["interrupted"] == {"signal": "SIGTERM", "phase": "the LoadGen test"}
    assert run.record["samples"]["completed"] > 0


# -- scoring ------------------------------------------------------------------------------------------------
def test_a_stop_signal_during_scoring_ends_the_scoring_processes_at_once():
    # Distinct texts, so no cache makes the scoring end before the signal comes.
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5_000)]

    def text() -> str:
        return ". ".join(" ".join(rng.choices(words, k=12)) for _ in range(3)) + "."

    predictions = [text() for _ in range(60_000)]
    references = [text() for _ in range(60_000)]
    before = set(_children())
    main = threading.main_thread().ident
    assert main is not None
    scoring_ended = threading.Event()

    def interrupt_once_workers_score() -> None:
        # The signal goes only while the scoring runs: one sent after it would hit whatever test is next.
        deadline = time.monotonic() + 30
        while not set(_children()) - before and time.monotonic() < deadline:
            time.sleep(0.05)
        if not scoring_ended.wait(1.0):
            signal.pthread_kill(main, signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_workers_score)
    t0 = time.monotonic()
    try:
        with StopSignals() as stop, pytest.raises(Interrupted):
            watcher.start()
            with stop.interruptible("scoring"):
                score_texts(predictions, references, workers=2)
    finally:
        scoring_ended.set()
        watcher.join()
    assert time.monotonic() - t0 < 20
    assert stop.requested is not None and stop.requested.phase == "scoring"
    deadline = time.monotonic() + 5
    while set(_children()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(_children()) - before


def _children() -> list[int]:
    """Live child processes of this one, but multiprocessing's resource tracker, which lives as long as it."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                if b"resource_tracker" not in (entry / "cmdline").read_bytes():
                    children.append(int(entry.name))
    return children
