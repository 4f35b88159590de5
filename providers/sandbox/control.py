"""The control port: every provider's faults and mailbox, reachable even while a provider's port is closed."""
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from providers.sandbox.host import ProviderHost, json_response


def control_app(hosts: list[ProviderHost]) -> Starlette:
    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "providers": {host.name: host.status() for host in hosts}})

    return Starlette(
        routes=[
            Route("/sandbox/health", health),
            *(Mount(f"/sandbox/{host.name}", routes=host.sandbox_routes(wait=True)) for host in hosts),
        ]
    )
