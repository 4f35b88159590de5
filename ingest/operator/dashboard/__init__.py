"""The operators' live dashboard: static files (no build step, nothing fetched from the internet) whose script
polls the analytics API of the gateway that serves them."""
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response

DIRECTORY = Path(__file__).resolve().parent
PATH = "/dashboard"
# Only these files are served: the package's own modules sit in the same folder.
ASSETS = {"index.html": "text/html", "dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def install(app: FastAPI) -> None:
    """Serve the page at /dashboard (a mail id in `?mail=` opens its trace) and its assets under /dashboard/."""

    @app.get(PATH, include_in_schema=False)
    @app.get(f"{PATH}/", include_in_schema=False)
    def page() -> Response:
        return _asset("index.html")

    @app.get(f"{PATH}/{{name}}", include_in_schema=False)
    def asset(name: str) -> Response:
        return _asset(name)


def _asset(name: str) -> Response:
    if name not in ASSETS:
        return Response(b'{"error": "not found"}', status_code=404, media_type="application/json")
    # Revalidated on every load, so a page open across an upgrade never mixes old and new files.
    return FileResponse(DIRECTORY / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})
