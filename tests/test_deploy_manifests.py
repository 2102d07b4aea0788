"""deploy/kserve/ and the remote replicas guide (docs/remote.md): the manifests are well-formed, vLLM accepts the
runtime's arguments, each replica gets as many GPUs as it shards over, and every
`python -m harness` line the guide shows for remote replicas parses. No network, no engine."""

from __future__ import annotations

import re
import shlex
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy" / "kserve"
GUIDE = ROOT / "docs" / "remote.md"
GUIDE_SECTION = "Remote replicas (KServe / OpenShift AI)"
KINDS = {
    "ServingRuntime": "serving.kserve.io/v1alpha1",
    "InferenceService": "serving.kserve.io/v1beta1",
    "ServiceAccount": "v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
}
REPLICAS = ["llama2-70b-replica-0", "llama2-70b-replica-1"]


def _documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def _of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in _documents() if doc["kind"] == kind]


def _runtime(name: str) -> dict:
    (runtime,) = [doc for doc in _of_kind("ServingRuntime") if doc["metadata"]["name"] == name]
    return runtime


def _server_argv(isvc: dict) -> list[str]:
    """The arguments vLLM gets in this InferenceService's pod: the runtime's, then the model's own,
    with {{.Name}} replaced as KServe does."""
    model = isvc["spec"]["predictor"]["model"]
    (container,) = [c for c in _runtime(model["runtime"])["spec"]["containers"] if c["name"] == "kserve-container"]
    args = [*container.get("args", []), *model.get("args", [])]
    return [arg.replace("{{.Name}}", isvc["metadata"]["name"]) for arg in args]


@pytest.fixture(scope="module")
def vllm_server_parser():
    """vLLM's own OpenAI server argument parser, built the way its entry point builds it (no engine)."""
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    try:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    except ImportError:  # vLLM before the launchers package
        from vllm.entrypoints.openai.cli_args import make_arg_parser, validate_parsed_serve_args

    def parse(argv: list[str]):
        parser = make_arg_parser(FlexibleArgumentParser(description="vLLM OpenAI-compatible server"))
        try:
            namespace = parser.parse_args(argv)
        except SystemExit as exc:  # argparse has printed which argument it refused
            pytest.fail(f"vLLM's server refuses {argv}: exit {exc.code}")
        validate_parsed_serve_args(namespace)
        return namespace

    return parse


def test_every_document_is_a_known_kind():
    docs = _documents()
    assert {name for name, _ in docs} >= {"servingruntime-vllm.yaml", "inferenceservices.yaml"}
    for name, doc in docs:
        assert doc["kind"] in KINDS, f"{name}: unexpected kind {doc['kind']}"
        assert doc["apiVersion"] == KINDS[doc["kind"]], f"{name}: {doc['kind']} {doc['apiVersion']}"
        assert doc["metadata"]["name"]
        assert "namespace" not in doc["metadata"], f"{name}: leave the namespace to `oc apply -n`"
        # The API server refuses a label or annotation value that is not a string (a bare `true`).
        for field in ("labels", "annotations"):
            for key, value in (doc["metadata"].get(field) or {}).items():
                assert isinstance(value, str), f"{name}: {field} {key}={value!r} must be a quoted string"
    assert sorted(doc["metadata"]["name"] for doc in _of_kind("InferenceService")) == REPLICAS


def test_runtime_container():
    (runtime,) = _of_kind("ServingRuntime")
    spec = runtime["spec"]
    assert {"name": "vLLM", "autoSelect": True} in spec["supportedModelFormats"]
    assert spec["annotations"]["prometheus.io/path"] == "/metrics"
    assert spec["annotations"]["prometheus.io/port"] == "8080"
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"
    image, _, tag = container["image"].rpartition(":")
    assert "/" in image and tag and tag != "latest", "pin the image to a vLLM release"
    assert container["command"][-2:] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert "--served-model-name={{.Name}}" in container["args"]
    assert {"containerPort": 8080, "protocol": "TCP"} in container["ports"]
    # Tensor parallelism needs a real /dev/shm.
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"


def test_vllm_accepts_the_runtime_arguments(vllm_server_parser):
    for isvc in _of_kind("InferenceService"):
        name = isvc["metadata"]["name"]
        args = vllm_server_parser(_server_argv(isvc))
        assert args.port == 8080
        assert args.model == "/mnt/models"
        assert args.served_model_name == [name]
        assert args.quantization == "fp8"
        assert args.kv_cache_dtype == "fp8"
        assert args.tensor_parallel_size == 2
        assert args.max_model_len >= 2048, "MLPerf llama2-70b: up to 1024 prompt + 1024 output tokens"


def test_each_replica_gets_the_gpus_it_shards_over(vllm_server_parser):
    runtimes = {doc["metadata"]["name"] for doc in _of_kind("ServingRuntime")}
    for isvc in _of_kind("InferenceService"):
        name = isvc["metadata"]["name"]
        predictor = isvc["spec"]["predictor"]
        assert predictor["model"]["runtime"] in runtimes, name
        assert predictor["model"]["modelFormat"]["name"] == "vLLM", name
        assert urlsplit(predictor["model"]["storageUri"]).scheme in ("pvc", "s3", "oci", "gs", "hf", "https"), name
        args = vllm_server_parser(_server_argv(isvc))
        resources = predictor["model"]["resources"]
        gpus = args.tensor_parallel_size * args.pipeline_parallel_size
        assert int(resources["limits"]["nvidia.com/gpu"]) == gpus, name
        assert int(resources["requests"].get("nvidia.com/gpu", gpus)) == gpus, name
        # One pod per InferenceService for the whole run: the harness does the spreading.
        assert predictor["minReplicas"] == predictor["maxReplicas"] == 1, name
        annotations = isvc["metadata"]["annotations"]
        assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment", name
        assert annotations["security.opendatahub.io/enable-auth"] == "true", name


def test_the_harness_account_may_call_every_replica():
    (account,) = _of_kind("ServiceAccount")
    (role,) = _of_kind("Role")
    (binding,) = _of_kind("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert {"kind": "ServiceAccount", "name": account["metadata"]["name"]} in binding["subjects"]
    allowed = {
        name
        for rule in role["rules"]
        if "serving.kserve.io" in rule["apiGroups"]
        and "inferenceservices" in rule["resources"]
        and "get" in rule["verbs"]
        for name in rule["resourceNames"]
    }
    assert allowed == set(REPLICAS)


def test_endpoints_example_lists_one_url_per_replica():
    """Read the way --endpoints-file reads: one URL a line, blank lines and # comments skipped."""
    lines = (DEPLOY / "endpoints.txt.example").read_text().splitlines()
    urls = [url for url in (line.split("#", 1)[0].strip() for line in lines) if url]
    assert len(urls) == len(REPLICAS)
    for url, replica in zip(urls, REPLICAS, strict=True):
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.hostname.startswith(replica), url
        assert parts.path in ("", "/"), f"{url}: give the base URL, without /v1"


def _guide_section() -> str:
    text = GUIDE.read_text()
    match = re.search(rf"^(#+) {re.escape(GUIDE_SECTION)}\n", text, re.MULTILINE)
    assert match, f"{GUIDE.relative_to(ROOT)} has no section {GUIDE_SECTION!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def _harness_command_lines(section: str) -> list[str]:
    """`python -m harness ...` from the section's code blocks (continuation lines joined) and inline code."""
    commands = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", section, re.MULTILINE | re.DOTALL):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if line.strip().startswith("python -m harness"):
                commands.append(line.strip())
    without_blocks = re.sub(r"^```.*?^```", "", section, flags=re.MULTILINE | re.DOTALL)
    for span in re.findall(r"`([^`]+)`", re.sub(r"\n\s*", " ", without_blocks)):
        if span.startswith("python -m harness"):
            commands.append(span)
    return commands


def test_the_remote_guides_commands_parse(capsys):
    from harness.cli import _parser

    commands = _harness_command_lines(_guide_section())
    assert len(commands) >= 4, commands
    refused = []
    for command in commands:
        argv = shlex.split(command, comments=True)[3:]
        try:
            args = _parser().parse_args(argv)
        except SystemExit:
            refused.append(f"{command}\n    {capsys.readouterr().err.strip().splitlines()[-1]}")
            continue
        if getattr(args, "sut", None) != "remote":
            refused.append(f"{command}\n    parsed, but not as --sut remote")
    assert not refused, "docs/remote.md commands python -m harness refuses:\n" + "\n".join(refused)
