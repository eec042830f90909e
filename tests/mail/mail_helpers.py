"""The email tests' SMTP server (aiosmtpd, on 127.0.0.1) and helpers to read its mail.

The app sends on background threads; ``SMTPServer.wait()`` waits for those sends
to finish (mail.wait_for_pending), so a test never sleeps or polls.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

from auth_service.integrations import mail

# The longest a stalled server holds a message before giving up on its own.
STALL_LIMIT = 30
LINK = re.compile(r"https?://[^\s<>\"]+")


def free_port() -> int:
    """A port the OS picks for 127.0.0.1 (aiosmtpd's Controller only takes fixed ports)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SMTPServer:
    """Keeps every message it accepts. ``stall()`` holds new DATA until ``release()``."""

    def __init__(self, app, **controller_options):
        self.app = app
        self.messages: list[EmailMessage] = []
        self.envelopes = []
        self.data_received = threading.Event()
        self._released = threading.Event()
        self._released.set()
        self._controller = Controller(
            self, hostname="127.0.0.1", port=free_port(), **controller_options
        )

    # aiosmtpd handler hook, run on the server's event loop.
    async def handle_DATA(self, server, session, envelope):
        self.data_received.set()
        if not self._released.is_set():
            await asyncio.to_thread(self._released.wait, STALL_LIMIT)
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    @property
    def port(self) -> int:
        return self._controller.port

    def start(self) -> SMTPServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self.release()
        mail.wait_for_pending(self.app, timeout=STALL_LIMIT)
        self._controller.stop()

    def stall(self) -> None:
        """Accept connections but answer no DATA until ``release()``."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def wait(self) -> list[EmailMessage]:
        """Wait until the app's queued sends are done; every message received so far."""
        assert mail.wait_for_pending(self.app, timeout=STALL_LIMIT), "sends still running"
        return self.messages

    def to(self, address: str, subject: str | None = None) -> list[EmailMessage]:
        """The messages received for ``address`` (with ``subject``), after waiting for sends."""
        return [
            m
            for m in self.wait()
            if m["To"] == address and (subject is None or m["Subject"] == subject)
        ]

    def last(self, address: str, subject: str) -> EmailMessage:
        """The latest message for ``address`` with ``subject``; fails when there is none."""
        found = self.to(address, subject)
        assert found, (
            f"no {subject!r} email to {address}; got {[m['Subject'] for m in self.messages]}"
        )
        return found[-1]


def use_smtp(monkeypatch, app, port: int, **settings) -> None:
    """Point ``app``'s mail at 127.0.0.1:``port`` over plain SMTP for one test."""
    values = {
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_USE_TLS": False,
        "MAIL_USE_SSL": False,
        "MAIL_TIMEOUT": 5,
        **settings,
    }
    for key, value in values.items():
        monkeypatch.setitem(app.config, key, value)


def serving_smtp(app, monkeypatch):
    """A fixture body: a running SMTP server that ``app`` sends to, stopped afterwards."""
    server = SMTPServer(app).start()
    use_smtp(monkeypatch, app, server.port)
    yield server
    server.stop()


# --- reading messages -----------------------------------------------------------------


def text_part(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_part(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def link_in(message: EmailMessage) -> str:
    """The one link of an email's text part."""
    links = set(LINK.findall(text_part(message)))
    assert len(links) == 1, links
    return links.pop()


def token_of(link: str) -> str:
    """The ``token`` query parameter of a link."""
    return parse_qs(urlsplit(link).query)["token"][0]


def path_and_query(link: str) -> str:
    """What a browser following ``link`` asks this API for."""
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"
