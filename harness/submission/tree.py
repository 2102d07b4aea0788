"""`python -m harness.submission RUN_DIR... --output DIR --submitter NAME`: the round's submission tree.

Runs are grouped by benchmark and scenario; each group needs one performance run, one
accuracy run and the benchmark's compliance runs (TEST06, or TEST07 and TEST09). Every run is checked against
the benchmark's rules first; a tree with a problem is refused, one line per
problem, unless `--allow-noncompliant` builds it anyway as a dry run, marked as such in
every README. The layout is the current round's (mlcommons/inference tools/submission/
submission_structure.md and the checker's path templates in submission_checker/constants.py):

    <division>/<submitter>/systems/<system>.json
    <division>/<submitter>/src/<benchmark>/                      (this harness's source)
    <division>/<submitter>/results/<system>/<benchmark>/<scenario>/
        performance/run_1/   mlperf_log_{detail,summary}.txt, mlperf_log_accuracy.json
        accuracy/            accuracy.txt, mlperf_log_accuracy.json (truncated), mlperf_log_{detail,summary}.txt
        TEST06/              verify_accuracy.txt, accuracy/mlperf_log_accuracy.json
        TEST07/              verify_accuracy.txt, accuracy/mlperf_log_accuracy.json,
                             performance/run_1/mlperf_log_{detail,summary}.txt
        TEST09/              verify_output_len.txt, and the rest as TEST07
        measurements.json, user.conf, README.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from accuracy.compliance import verdict_class
from accuracy.scored_log import ACCURACY_TXT
from harness.single.record import RunRecord, console_warning, read_run_record
from harness.single.results import RunResult
from harness.submission import system_info
from mlperf_llm_sut.benchmarks import BENCHMARKS, Benchmark, get_benchmark
from mlperf_llm_sut.common.errors import HarnessError, report_failure
from mlperf_llm_sut.common.files import read_each, read_json, read_text

LOG_FILES = ("mlperf_log_detail.txt", "mlperf_log_summary.txt")
ACCURACY_LOG = "mlperf_log_accuracy.json"
TREE_FILES = {"performance": (*LOG_FILES, ACCURACY_LOG), "accuracy": (*LOG_FILES, ACCURACY_LOG, ACCURACY_TXT)}
"""What the tree copies of each kind of run."""


def audit_files(test: str) -> tuple[str, ...]:
    """What the tree copies of a compliance run: what the audit's run_verification.py copies (its verify file,
    the accuracy log, and for TEST07 and TEST09 the performance logs)."""
    audit = verdict_class(test)
    return (audit.verify_file, ACCURACY_LOG, *(LOG_FILES if audit.keeps_performance_logs else ()))


# tools/submission/truncate_accuracy_log.py: MAX_ACCURACY_LOG_SIZE and VIEWABLE_SIZE.
MAX_ACCURACY_LOG_SIZE = 10 * 1024
VIEWABLE_SIZE = 4096
SOURCE_PACKAGES = ("mlperf_llm_sut", "harness", "scenarios", "sut", "accuracy")
SOURCE_FILES = ("setup.py", "pyproject.toml", "Makefile", "README.md")


@dataclass
class Run:
    path: Path
    record: RunRecord

    @property
    def kind(self) -> str:
        """performance, accuracy, or the compliance test's name."""
        return self.record.kind


@dataclass
class ResultSet:
    """The runs of one benchmark and scenario: what one results/<system>/<benchmark>/<scenario>/ holds."""

    benchmark: Benchmark
    scenario: str
    runs: dict[str, list[Run]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.benchmark.result_name} {self.scenario}"


def load_runs(run_dirs: Sequence[Path], warn: Callable[[str], None]) -> list[Run]:
    """The runs; one whose run.json is damaged is left out with a `warn`ing (the runs its results folder then
    lacks are named by `missing_runs`)."""
    return read_each(
        run_dirs,
        lambda path: Run(Path(path), read_run_record(Path(path))),
        warn,
        left_out="Left out of the submission.",
    )


def group(runs: Sequence[Run]) -> list[ResultSet]:
    sets: dict[tuple[str, str], ResultSet] = {}
    for run in runs:
        benchmark = get_benchmark(run.record.benchmark, option=f"{run.path / 'run.json'}: benchmark")
        key = (benchmark.result_name, run.record.scenario)
        result_set = sets.setdefault(key, ResultSet(benchmark, run.record.scenario))
        result_set.runs.setdefault(run.kind, []).append(run)
    return list(sets.values())


def missing_runs(result_set: ResultSet, division: str) -> list[str]:
    """Runs a results folder needs and does not have exactly once, and files of theirs the tree copies: without
    them there is no tree to build. The open division has no compliance tests (the checker skips them there)."""
    problems = []
    label, benchmark = result_set.label, result_set.benchmark
    audits = [test.name for test in benchmark.compliance] if division == "closed" else []
    for kind in ("performance", "accuracy", *audits):
        found = result_set.runs.get(kind, [])
        if not found:
            hint = f" (python -m harness --compliance {kind} ...)" if kind.startswith("TEST") else ""
            problems.append(f"{label}: no {kind} run{hint}; run one and pass its directory")
        elif len(found) > 1:
            problems.append(f"{label}: {len(found)} {kind} runs ({', '.join(str(r.path) for r in found)}); pass one")
        else:
            path = found[0].path
            for name in TREE_FILES[kind] if kind in TREE_FILES else audit_files(kind):
                if not (path / name).is_file():
                    problems.append(f"{label} {kind} run: {name} is missing from {path}; the tree needs it")
    return problems


def check(result_set: ResultSet, division: str) -> list[str]:
    """Everything about these runs that breaks the benchmark's rules, one line each."""
    problems: list[str] = []
    label, benchmark = result_set.label, result_set.benchmark
    closed = division == "closed"
    if closed and not benchmark.current_round:
        problems.append(
            f"{label}: {benchmark.name} is not listed in round {benchmark.round_name}; the closed division takes "
            + ", ".join(name for name, listed in BENCHMARKS.items() if listed.current_round)
        )
    for kind, found in result_set.runs.items():
        if len(found) != 1:
            continue
        run, record = found[0], found[0].record
        where = f"{label} {kind} run {run.path.name}"
        result = record.result
        if kind == "performance" and not result.valid:
            problems.append(f"{where}: INVALID ({'; '.join(result.invalid_reasons) or 'see its summary'})")
        if kind == "performance":
            problems += [f"{where}: {problem}" for problem in latency_problems(benchmark, result_set.scenario, result)]
        if kind == "accuracy":
            accuracy = record.accuracy
            if accuracy is None:
                problems.append(f"{where}: not scored (the data set had no references?)")
            elif closed:
                # Judged against the benchmark's own targets, as the checker reads accuracy.txt, whatever
                # targets the run itself was scored against.
                failed = [row for row in benchmark.accuracy.check(accuracy.metrics) if not row["passed"]]
                if failed:
                    below = ", ".join(f"{row['metric']} {row['value']}" for row in failed)
                    problems.append(f"{where}: below {benchmark.name}'s accuracy targets ({below})")
        if kind in {test.name for test in benchmark.compliance}:
            compliance = record.compliance
            if closed and not (compliance and compliance.passed):
                failures = compliance.failures if compliance else []
                problems.append(f"{where}: {kind} failed ({'; '.join(failures) or 'no verdict'})")
        elif record.non_compliant:
            problems.append(f"{where}: not compliant ({'; '.join(record.non_compliant)})")
    return problems


def latency_problems(benchmark: Benchmark, scenario: str, result: RunResult) -> list[str]:
    """The checker's own LLM test: p99 TTFT and TPOT strictly below the scenario's limits."""
    rules = benchmark.rules(scenario)
    problems = []
    for name, limit, measured in (("TTFT", rules.ttft_ms, result.ttft_ms), ("TPOT", rules.tpot_ms, result.tpot_ms)):
        if limit is None:
            continue
        p99 = (measured or {}).get("p99")
        if p99 is None:
            problems.append(f"no {name} p99 in the result")
        elif p99 >= limit:
            problems.append(f"{name} p99 {p99:g} ms is not below the {limit:g} ms limit")
    return problems


def truncate_accuracy_log(log: Path, accuracy_txt: Path) -> None:
    """As tools/submission/truncate_accuracy_log.py: the full log's sha256 goes into accuracy.txt, then
    the log keeps its first and last 4 KiB."""
    text = read_text(accuracy_txt, what="accuracy result")
    digest = hashlib.sha256(log.read_bytes()).hexdigest()
    recorded = re.search(r"^hash=([\w\d]+)$", text, re.M)
    if recorded and recorded.group(1) != digest:
        raise HarnessError(f"{accuracy_txt} records hash {recorded.group(1)}, but {log} has {digest}: not its log.")
    if recorded and log.stat().st_size < MAX_ACCURACY_LOG_SIZE:
        return
    if not recorded:
        accuracy_txt.write_text(text + f"\nhash={digest}\n")
    size = log.stat().st_size
    if size < VIEWABLE_SIZE:
        return
    with log.open() as src:
        start = src.read(VIEWABLE_SIZE)
        src.seek(size - VIEWABLE_SIZE, 0)
        end = src.read(VIEWABLE_SIZE)
    log.write_text(start + "\n\n...\n\n" + end)


def measurements(record: RunRecord, benchmark: Benchmark) -> dict[str, str]:
    """measurements.json: the fields constants.py SYSTEM_IMP_REQUIRED_FILES asks for, from the run's engine."""
    engine = record.config.engine
    quantized = engine.quantization
    dtype = engine.dtype or "auto"
    return {
        "input_data_types": benchmark.token_dtype,
        "retraining": "No",
        "starting_weights_filename": Path(engine.model).name,
        "weight_data_types": quantized or (dtype if dtype != "auto" else "as in the checkpoint"),
        "weight_transformations": f"{quantized} quantization by vLLM at load time" if quantized else "none",
    }


def user_conf(run: Run, benchmark: Benchmark) -> str:
    """The run's own user.conf; without one, the setting the run needed (its target QPS, or SingleStream's
    expected latency in ms), as a user.conf."""
    kept = run.path / "user.conf"
    text = read_text(kept, what="the run's copy of user.conf") if kept.is_file() else ""
    if text.strip():
        return text
    rules = benchmark.rules(run.record.scenario)
    effective = run.record.loadgen.effective or {}
    if rules.loadgen_scenario == "SingleStream":
        latency_ms = effective.get("target_latency_ns", 10_000_000) / 1e6
        return f"{rules.conf_model}.SingleStream.target_latency = {latency_ms:g}\n"
    qps = effective.get("target_qps", 1)
    return f"{rules.conf_model}.{rules.loadgen_scenario}.target_qps = {qps}\n"


def readme(result_set: ResultSet, system: str, dry_run: list[str]) -> str:
    lines = []
    if dry_run:
        lines += [
            "# DRY RUN: NOT A VALID SUBMISSION",
            "",
            "Built with --allow-noncompliant. These problems would make it fail review:",
            "",
            *[f"- {problem}" for problem in dry_run],
            "",
        ]
    lines += [
        f"# {result_set.benchmark.result_name} {result_set.scenario} on {system}",
        "",
        "Made with mlperf-llm-sut (`src/` holds its source). The commands that produced each run:",
        "",
    ]
    for kind, runs in sorted(result_set.runs.items()):
        for run in runs:
            command = run.record.config.command
            shown = " ".join(command) if command else "library call: harness.run(harness.build_config(...))"
            lines += [
                f"## {kind}",
                "",
                "```",
                shown,
                "```",
                "",
                f"Run directory `{run.path.name}`, started {run.record.started_at}, "
                f"package versions: {', '.join(f'{k} {v}' for k, v in run.record.versions.items())}.",
                "",
            ]
    return "\n".join(lines)


def _copy_logs(src: Path, dst: Path, names: Sequence[str]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / name, dst / name)


def write_result_set(result_set: ResultSet, base: Path, system: str, dry_run: list[str]) -> Path:
    out = base / "results" / system / result_set.benchmark.result_name / result_set.scenario
    performance = result_set.runs["performance"][0]
    _copy_logs(performance.path, out / "performance" / "run_1", TREE_FILES["performance"])
    accuracy = result_set.runs["accuracy"][0]
    _copy_logs(accuracy.path, out / "accuracy", TREE_FILES["accuracy"])
    truncate_accuracy_log(out / "accuracy" / ACCURACY_LOG, out / "accuracy" / ACCURACY_TXT)
    for test in result_set.benchmark.compliance:
        if test.name not in result_set.runs:  # the open division needs none
            continue
        # Where the audit's run_verification.py puts them, and the checker's TESTxx_ACC_PATH looks.
        audit, kept = result_set.runs[test.name][0], verdict_class(test.name)
        _copy_logs(audit.path, out / test.name, (kept.verify_file,))
        _copy_logs(audit.path, out / test.name / "accuracy", (ACCURACY_LOG,))
        if kept.keeps_performance_logs:
            _copy_logs(audit.path, out / test.name / "performance" / "run_1", LOG_FILES)
    (out / "measurements.json").write_text(
        json.dumps(measurements(performance.record, result_set.benchmark), indent=4) + "\n"
    )
    (out / "user.conf").write_text(user_conf(performance, result_set.benchmark))
    (out / "README.md").write_text(readme(result_set, system, dry_run))
    return out


def write_source(base: Path, benchmarks: Sequence[str]) -> None:
    """src/<benchmark>/: the harness's own source, as the round asks for the code that made the results."""
    root = Path(__file__).resolve().parents[2]  # harness/submission/tree.py: the repository
    for name in benchmarks:
        dst = base / "src" / name / "mlperf-llm-sut"
        for package in SOURCE_PACKAGES:
            shutil.copytree(root / package, dst / package, ignore=shutil.ignore_patterns("__pycache__", "embedded"))
        for file in SOURCE_FILES:
            if (root / file).is_file():
                shutil.copyfile(root / file, dst / file)


@dataclass
class Submission:
    root: Path
    system: str
    result_dirs: list[Path]
    problems: list[str]
    """Empty for a tree that can be handed in; the dry run's reasons otherwise."""


def build_submission(
    run_dirs: Sequence[Path],
    output: Path,
    *,
    submitter: str,
    division: str = "closed",
    system_file: Path | None = None,
    system_name: str | None = None,
    allow_noncompliant: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Submission:
    """The tree of `run_dirs` in `output`; a run whose run.json is damaged is left out, with a `warn`ing (on
    stderr by default)."""
    if division not in ("closed", "open"):
        raise HarnessError(f"--division {division!r}: use closed or open.")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", submitter):
        raise HarnessError(f"--submitter {submitter!r}: use letters, digits, '.', '_' or '-' (it names a folder).")
    if output.exists() and any(output.iterdir()):
        raise HarnessError(f"--output {output} exists and is not empty: pass a new directory.")
    runs = load_runs(run_dirs, warn or console_warning(Console(stderr=True)))
    sets = group(runs)
    if system_file is not None:
        description = read_json(system_file, what="--system")
    else:
        description = system_info.describe_host(
            division=division, submitter=submitter, versions=runs[0].record.versions
        )
    system = system_name or system_info.system_id(description)
    problems = [line for result_set in sets for line in check(result_set, division)]
    system_problems = system_info.problems(description, division=division, submitter=submitter)
    if system_problems:
        draft = output.with_name(f"{output.name}-system-draft.json")
        draft.write_text(json.dumps(description, indent=4) + "\n")
        problems.append(
            f"systems/{system}.json: {'; '.join(system_problems)} (a draft of what this host shows is in "
            f"{draft}: complete it and pass it with --system)"
        )
    missing = [line for result_set in sets for line in missing_runs(result_set, division)]
    if missing:
        raise HarnessError("\n".join(missing))
    if problems and not allow_noncompliant:
        problems[-1] += " (--allow-noncompliant builds the tree anyway, as a dry run)"
        raise HarnessError("\n".join(problems))
    base = output / division / submitter
    (base / "systems").mkdir(parents=True)
    (base / "systems" / f"{system}.json").write_text(json.dumps(description, indent=4) + "\n")
    write_source(base, sorted({result_set.benchmark.result_name for result_set in sets}))
    result_dirs = [write_result_set(result_set, base, system, problems) for result_set in sets]
    return Submission(output, system, result_dirs, problems)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.submission",
        description="Assemble run directories into the current MLPerf round's submission tree, after checking "
        "each run against its benchmark's rules.",
    )
    p.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="performance, accuracy and compliance (TESTxx) runs"
    )
    p.add_argument("--output", required=True, type=Path, help="a new directory for the tree")
    p.add_argument("--submitter", required=True, help="the submitting organization, as it names its folder")
    p.add_argument(
        "--system", type=Path, metavar="FILE.json", help="the system description (default: read off this host)"
    )
    p.add_argument(
        "--system-name", help="the system's folder name (default: from the hardware, e.g. 4xL40S_1xEPYC_9354)"
    )
    p.add_argument("--division", default="closed", choices=["closed", "open"])
    p.add_argument(
        "--allow-noncompliant",
        action="store_true",
        help="build the tree even when runs break the rules: a dry run, marked as such in every README",
    )
    args = p.parse_args(argv)
    try:
        submission = build_submission(
            args.runs,
            args.output,
            submitter=args.submitter,
            division=args.division,
            system_file=args.system,
            system_name=args.system_name,
            allow_noncompliant=args.allow_noncompliant,
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return report_failure(exc, lambda line: print(f"error: {line}", file=sys.stderr))
    for path in submission.result_dirs:
        print(f"wrote {path}")
    if submission.problems:
        print(f"DRY RUN, not a valid submission: {len(submission.problems)} problems (listed in each README)")
        return 1
    print(f"submission tree: {submission.root / args.division / args.submitter}")
    return 0
