"""Drive a sandbox process from tests: start it on given ports, change its faults, read its mailboxes."""
import sys
from pathlib import Path
from typing import Any

import requests

from deploy.processes import ManagedProcess, port_open
from providers import ProviderAdapter, load_providers

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
# Where each adapter reads its key when it is not `<PROVIDER>_API_KEY`.
KEY_VARIABLES = {"postmark": "POSTMARK_SERVER_TOKEN", "smtp": "SMTP_PASSWORD"}


class Sandbox:
    """Drives a running sandbox through its control port, and builds adapters aimed at it."""

    def __init__(self, ports: dict[str, int], control_port: int) -> None:
        self.ports = ports
        self.control = f"http://{HOST}:{control_port}/sandbox"
        self.http = requests.Session()
        self._services: list[ProviderAdapter] = []

    def url(self, provider: str) -> str:
        return f"http://{HOST}:{self.ports[provider]}"

    def set_faults(self, provider: str, **faults: Any) -> None:
        response = self.http.put(f"{self.control}/{provider}/faults", json=faults, timeout=5)
        response.raise_for_status()

    def messages(self, provider: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.control}/{provider}/messages", timeout=5)
        response.raise_for_status()
        return response.json()

    def received(self, subject: str) -> dict[str, int]:
        """How many messages with this subject each provider received."""
        return {p: sum(1 for m in self.messages(p) if m["subject"] == subject) for p in self.ports}

    def clear_faults(self) -> None:
        for provider in self.ports:
            self.http.delete(f"{self.control}/{provider}/faults", timeout=5).raise_for_status()

    def reset(self) -> None:
        self.clear_faults()
        for provider in self.ports:
            self.http.delete(f"{self.control}/{provider}/messages", timeout=5).raise_for_status()

    def env(self) -> dict[str, str]:
        """What points every adapter at this sandbox: HTTP base URLs, and the SMTP relay's host and port."""
        env = {f"{name.upper()}_BASE_URL": self.url(name) for name in self.ports}
        if "smtp" in self.ports:
            env.update({"SMTP_HOST": HOST, "SMTP_PORT": str(self.ports["smtp"])})
        return env

    def service(
        self, provider: str, *, api_key: str | None = None, read_timeout: float | None = None, **env: str
    ) -> ProviderAdapter:
        """The adapter exactly as the dispatcher gets it: through load_providers and the environment."""
        settings = {"MERCURY_PROVIDERS": provider, **self.env(), **env}
        if api_key is not None:
            settings[KEY_VARIABLES.get(provider, f"{provider.upper()}_API_KEY")] = api_key
        if read_timeout is not None:
            settings["MERCURY_PROVIDER_READ_TIMEOUT"] = str(read_timeout)
        [service] = load_providers(settings)
        self._services.append(service)
        return service

    def close_services(self) -> None:
        """Close every adapter service() built, releasing its connections (and the SMTP relay's threads)."""
        services, self._services = self._services, []
        for service in services:
            service.close()


def sandbox_argv(ports: dict[str, int], control_port: int, *options: str) -> list[str]:
    argv = [sys.executable, "-m", "providers.sandbox", "--host", HOST, "--control-port", str(control_port), *options]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    return argv


def sandbox_process(log_dir: Path, ports: dict[str, int], control_port: int, *options: str) -> ManagedProcess:
    """`options` are further sandbox arguments, e.g. the SMTP relay's certificate."""
    every_port = [*ports.values(), control_port]
    return ManagedProcess(
        "sandbox",
        sandbox_argv(ports, control_port, *options),
        log_dir,
        ready=lambda: all(port_open(HOST, port) for port in every_port),
        cwd=ROOT,
        ready_timeout=20,
    )
