"""Settings for remote replicas: where they are, how to talk to them, and when to give up.

The bearer token itself is never part of the configuration: only the name of the
environment variable or the path of the file that holds it, so that writing the
configuration to run.json can never leak it. `bearer_token()` reads it when the
clients are built.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlperf_llm_sut.common.errors import HarnessError, setting
from mlperf_llm_sut.common.files import read_text
from sut.apis import PROTOCOLS, api_class
from sut.generation import GenerationConfig

OUTPUT_IDS = ("auto", "text")


@dataclass
class RemoteConfig:
    endpoints: list[str] = field(default_factory=list)
    """Base URLs, one per replica (`http://host:port`, no `/v1`)."""
    protocol: str = "openai"
    served_model_name: str | None = None
    """The model name the servers know; None: the only model an endpoint lists."""
    token_env: str | None = None
    """Environment variable that holds the bearer token."""
    token_file: Path | None = None
    """File that holds the bearer token."""
    ca_bundle: Path | None = None
    """CA certificates to verify TLS with; verification is on either way."""
    max_in_flight: int = 256
    """Requests in flight per replica; more wait in the replica's queue (backpressure)."""
    connect_timeout: float = 10.0
    first_token_timeout: float = 600.0
    """Seconds from sending a request to its first token (queueing in the server included)."""
    request_timeout: float = 3600.0
    """Seconds from sending a request to its last token."""
    retries: int = 2
    """Attempts after the first, only while LoadGen has seen no token of the sample."""
    eject_after: int = 3
    """Consecutive errors that take a replica out of dispatch until its health probe passes."""
    probe_interval: float = 2.0
    down_timeout: float = 120.0
    """Seconds a replica may stay out before it is failed for good."""
    stall_timeout: float = 120.0
    """Seconds a replica with requests on the wire may go without a token or an answer before it is taken
    out as stuck, even if its health check answers."""
    output_ids: str = "auto"
    """`auto`: the server's token ids where it returns them, else the text re-tokenized; `text`: always re-tokenize."""
    client_processes: int | None = None
    """Worker processes the replicas' HTTP clients run in, each serving whole endpoints (`sut.client_worker`);
    None: one per endpoint, as many as the host's cores less one allow (at least one); 0: in the harness's own
    process, beside LoadGen (for comparison: one interpreter then reads every streamed token)."""

    def client_process_count(self) -> int:
        """How many client worker processes the run starts."""
        if self.client_processes is not None:
            return self.client_processes
        return min(len(self.endpoints), max(1, len(os.sched_getaffinity(0)) - 1))

    def check(self) -> None:
        """Every mistake in the remote settings, as one clear error, before anything connects."""
        if not self.endpoints:
            raise HarnessError(
                f"{setting('sut')} remote needs at least one {setting('endpoints')} URL (or an "
                f"{setting('endpoints_file')})."
            )
        for url in self.endpoints:
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - parsing it is the check
            except ValueError as exc:
                raise HarnessError(
                    f"endpoint {url!r} is not a valid URL ({exc}); give the server's base URL, "
                    "e.g. http://10.0.0.5:8000 (ports are 1 to 65535)."
                ) from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise HarnessError(
                    f"endpoint {redact_url(url)!r} is not an http(s) URL; give the server's base URL, "
                    "e.g. http://10.0.0.5:8000 or https://llama-0.apps.example.com."
                )
            if parts.path.rstrip("/").endswith(("/v1", "/v2")):
                raise HarnessError(
                    f"endpoint {redact_url(url)!r} ends with the API version; give the base URL without it "
                    f"({redact_url(url).rstrip('/').rsplit('/', 1)[0]}): the protocol adds /v1 or /v2 itself."
                )
        if len(set(self.endpoints)) != len(self.endpoints):
            raise HarnessError("the same endpoint is listed twice; give each replica's URL once.")
        if self.protocol not in PROTOCOLS:
            raise HarnessError(f"{setting('protocol')} {self.protocol!r}: use one of {', '.join(PROTOCOLS)}.")
        if api_class(self.protocol).needs_model_name and not self.served_model_name:
            raise HarnessError(
                f"{setting('protocol')} {self.protocol} has no model listing: name the model with "
                f"{setting('served_model_name')}."
            )
        if self.output_ids not in OUTPUT_IDS:
            raise HarnessError(f"{setting('output_ids')} {self.output_ids!r}: use one of {', '.join(OUTPUT_IDS)}.")
        if self.token_env and self.token_file:
            raise HarnessError(
                f"give the bearer token by {setting('token_env')} or by {setting('token_file')}, not both."
            )
        self.tls_verify()
        for name, value in (
            (setting("max_in_flight"), self.max_in_flight),
            (setting("connect_timeout"), self.connect_timeout),
            (setting("first_token_timeout"), self.first_token_timeout),
            (setting("request_timeout"), self.request_timeout),
            (setting("eject_after"), self.eject_after),
            (setting("probe_interval"), self.probe_interval),
            (setting("down_timeout"), self.down_timeout),
            (setting("stall_timeout"), self.stall_timeout),
        ):
            if value <= 0:
                raise HarnessError(f"{name} must be positive.")
        if self.retries < 0:
            raise HarnessError(f"{setting('retries')} must be 0 or more.")
        if self.client_processes is not None and not 0 <= self.client_processes <= len(self.endpoints):
            raise HarnessError(
                f"{setting('client_processes')} {self.client_processes}: give 0 (clients in the harness's own "
                f"process) to {len(self.endpoints)} (one per endpoint): each client process serves whole endpoints."
            )
        self.bearer_token()

    def check_generation(self, generation: GenerationConfig) -> None:
        """Generation settings the protocol cannot send are an error now, not a silently different run."""
        problem = api_class(self.protocol).unsupported(generation)
        if problem:
            raise HarnessError(f"{setting('protocol')} {self.protocol}: {problem}")

    def tls_verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies servers with: the system's CAs, or `ca_bundle`'s."""
        if self.ca_bundle is None:
            return True
        if not self.ca_bundle.is_file():
            raise HarnessError(
                f"{setting('ca_bundle')} {self.ca_bundle} is not a file; give a PEM file of CA certificates."
            )
        try:
            return ssl.create_default_context(cafile=str(self.ca_bundle))
        except ssl.SSLError as exc:
            raise HarnessError(
                f"{setting('ca_bundle')} {self.ca_bundle} holds no usable CA certificate ({exc.reason or exc}); "
                "give a PEM file with the CA that signed the servers' certificates."
            ) from None

    def bearer_token(self) -> str | None:
        """The token from the environment or the file; an error names the source, never the value."""
        if self.token_env:
            token = os.environ.get(self.token_env, "").strip()
            if not token:
                raise HarnessError(
                    f"{setting('token_env')} {self.token_env}: that environment variable is not set or empty; "
                    f"export {self.token_env} with the bearer token."
                )
            return token
        if self.token_file:
            try:
                token = self.token_file.read_text().strip()
            except OSError as exc:
                raise HarnessError(
                    f"{setting('token_file')} {self.token_file}: cannot read it ({exc.strerror})."
                ) from None
            except UnicodeDecodeError:  # what the bytes were stays out of the message: they are the secret's
                raise HarnessError(
                    f"{setting('token_file')} {self.token_file} is not text; put the bearer token in it."
                ) from None
            if not token:
                raise HarnessError(f"{setting('token_file')} {self.token_file} is empty; put the bearer token in it.")
            return token
        return None


def read_endpoints_file(path: Path) -> list[str]:
    """One URL a line; blank lines and `#` comments are skipped."""
    lines = read_text(path, what=setting("endpoints_file"), remedy="give one base URL a line").splitlines()
    urls = [line.split("#", 1)[0].strip() for line in lines]
    urls = [url for url in urls if url]
    if not urls:
        raise HarnessError(f"{setting('endpoints_file')} {path} lists no endpoint; put one base URL on each line.")
    return urls


def redact_url(url: str) -> str:
    """The URL without any user:password part, for logs and results."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
