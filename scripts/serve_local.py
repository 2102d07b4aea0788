"""Start N local vLLM OpenAI-compatible servers on 127.0.0.1 and keep them up until Ctrl-C.

Each gets its own share of the host (GPUs [i*TP, (i+1)*TP), or an even share of
the CPU cores, or --cpu-bind), its own port from --base-port on, and a log in
--log-dir. Their URLs go to the console and to --endpoints-file, one a line.
Without --model they serve the embedded tiny model.

    python scripts/serve_local.py --servers 2 [--model DIR] [--base-port 8100]
                                  [--endpoints-file endpoints.txt] [-- any vLLM server options]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlperf_llm_sut.common.errors import HarnessError
from mlperf_llm_sut.common.stopping import Interrupted, StopSignals
from sut import local_servers
from sut.layout import format_cpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--model", help="model directory (default: the embedded tiny model)")
    parser.add_argument("--served-model-name")
    parser.add_argument("--base-port", type=int, default=8100)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--cpu-bind", action="append", help="cores of one server; once per server")
    parser.add_argument("--log-dir", type=Path, default=Path("serve-logs"))
    parser.add_argument("--endpoints-file", type=Path, default=Path("endpoints.txt"))
    parser.add_argument("server_args", nargs="*", help="passed to every vLLM server as given (after --)")
    args = parser.parse_args()
    if args.servers < 1:
        parser.error("--servers must be at least 1")
    # Servers run in sessions of their own, out of reach of a Ctrl-C at the terminal: this process stops
    # them, on SIGINT or SIGTERM, also while they are still starting.
    with StopSignals(sys.stderr.fileno()) as stop:
        try:
            with stop.interruptible("start-up"):
                servers = local_servers.start(
                    args.servers,
                    model=args.model,
                    served_model_name=args.served_model_name,
                    base_port=args.base_port,
                    log_dir=args.log_dir,
                    server_args=args.server_args,
                    tensor_parallel=args.tensor_parallel_size,
                    cpu_bind=args.cpu_bind,
                )
        except HarnessError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except Interrupted as exc:
            return exc.interruption.exit_code
        with servers:
            args.endpoints_file.write_text("".join(url + "\n" for url in servers.urls))
            for server in servers.servers:
                cores = format_cpus(server.placement.cpus) if server.placement.cpus else "any"
                devices = ",".join(server.placement.devices)
                print(f"{server.url}  devices {devices}  cores {cores}  log {server.log_path}")
            print(f"endpoints in {args.endpoints_file}; Ctrl-C stops them", flush=True)
            stop.phase = "serving"
            while not stop.wait(1.0):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
