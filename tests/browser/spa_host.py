"""The demo SPA served from other origins, beside the app under gunicorn (tests/servers.py).
A plain helper; the fixtures are in conftest.py."""

from __future__ import annotations

from pathlib import Path

from fake_provider import Server

DEMO_DIR = Path(__file__).resolve().parents[2] / "auth_service" / "demo"


class SpaHost:
    """The demo SPA served from other origins: ``/<name>/`` talks to the API of ``name``.

    The same files as /demo, with the page's ``auth-api`` meta tag pointing at the
    API (what a frontend developer copying the demo would edit). Two ports, so that
    there are two origins on the site 127.0.0.1, and ``localhost`` for another site.
    """

    TYPES = {
        "html": "text/html",
        "js": "text/javascript",
        "css": "text/css",
        "svg": "image/svg+xml",
    }

    def __init__(self):
        self.apis: dict[str, str] = {}
        self.servers = [Server(self.wsgi).start(), Server(self.wsgi).start()]
        self.port, self.other_port = [int(s.base_url.rsplit(":", 1)[1]) for s in self.servers]

    def wsgi(self, environ, start_response):
        name, _, file = environ["PATH_INFO"].lstrip("/").partition("/")
        file = file or "index.html"
        path = DEMO_DIR / file
        if name not in self.apis or "/" in file or not path.is_file():
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        body = path.read_bytes()
        if file == "index.html":
            body = body.replace(
                b'<meta name="auth-api" content="">',
                f'<meta name="auth-api" content="{self.apis[name]}">'.encode(),
            )
        start_response(
            "200 OK", [("Content-Type", self.TYPES[path.suffix[1:]]), ("Cache-Control", "no-store")]
        )
        return [body]

    def mount(self, name: str, api: str) -> None:
        self.apis[name] = api

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
