"""Outgoing email: a text + HTML message, sent without making the request wait.

``MAIL_BACKEND=smtp`` hands the message to a small pool of background threads
that deliver it through MAIL_SERVER with smtplib, every socket operation bounded
by MAIL_TIMEOUT: a slow or dead mail server costs the request nothing, and a
failure is logged with the recipient and subject only -- the body holds
single-use links. ``MAIL_BACKEND=console`` writes the message to the log instead
(development: the link is right there to click).

Callers queue their sends for after the commit (auth_service.persistence.transactions),
so no email announces a change that was rolled back. ``wait_for_pending`` lets tests wait for the queued sends instead of
sleeping; a worker process that exits finishes its queue first (concurrent.futures
joins its threads at exit), each send still bounded by MAIL_TIMEOUT.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from flask import Flask, current_app

from auth_service.observability import metrics

log = logging.getLogger(__name__)

SMTP_KEYS = (
    "MAIL_SERVER",
    "MAIL_PORT",
    "MAIL_USE_TLS",
    "MAIL_USE_SSL",
    "MAIL_USERNAME",
    "MAIL_PASSWORD",
    "MAIL_TIMEOUT",
)
# Two connections at a time are plenty for account emails; a mail server that
# stalls holds at most these threads, each for MAIL_TIMEOUT per socket operation.
SMTP_WORKERS = 2
# Beyond this many queued messages (a long outage under load) new ones are dropped
# and logged rather than piling up in memory.
MAX_PENDING = 500


def build_message(to: str, subject: str, text: str, html: str) -> EmailMessage:
    """A multipart/alternative message from MAIL_FROM to ``to``: plain text, then HTML."""
    sender = current_app.config["MAIL_FROM"]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    # The bare address (validated, no line breaks): a user-chosen display name has no
    # place in a header. A non-ASCII one goes out with SMTPUTF8 where the server has it.
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    # With no domain make_msgid would ask DNS for this host's name, in the request.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def send(message: EmailMessage) -> None:
    """Log the message (console backend) or queue it for SMTP delivery; never raises for SMTP."""
    config = current_app.config
    if config["MAIL_BACKEND"] == "console":
        log.info(
            "email (MAIL_BACKEND=console, not sent)\nTo: %s\nSubject: %s\n\n%s",
            message["To"],
            message["Subject"],
            message.get_body(("plain",)).get_content(),
        )
        return
    settings = {key: config[key] for key in SMTP_KEYS}
    current_app.extensions["mail_outbox"].submit(message, settings)


def deliver(message: EmailMessage, settings: dict) -> bool:
    """Send one message over SMTP (on a worker thread); log the outcome, never raise."""
    host, port = settings["MAIL_SERVER"], settings["MAIL_PORT"]
    try:
        if settings["MAIL_USE_SSL"]:
            smtp = smtplib.SMTP_SSL(
                host, port, timeout=settings["MAIL_TIMEOUT"], context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=settings["MAIL_TIMEOUT"])
        with smtp:
            if settings["MAIL_USE_TLS"]:
                smtp.starttls(context=ssl.create_default_context())
            if settings["MAIL_USERNAME"]:
                smtp.login(settings["MAIL_USERNAME"], settings["MAIL_PASSWORD"] or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # The exception's text is the server's reply or the socket error, never the body.
        log.error(
            "email %r to %s not sent via %s:%s: %s: %s",
            message["Subject"],
            message["To"],
            host,
            port,
            type(exc).__name__,
            exc,
        )
        metrics.email(sent=False)
        return False
    except Exception:
        log.exception(
            "email %r to %s not sent via %s:%s", message["Subject"], message["To"], host, port
        )
        metrics.email(sent=False)
        return False
    log.info("email %r sent to %s", message["Subject"], message["To"])
    metrics.email(sent=True)
    return True


class Outbox:
    """The app's background SMTP senders and the sends still in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[Future] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._pid: int | None = None

    def submit(self, message: EmailMessage, settings: dict) -> None:
        """Deliver ``message`` on a worker thread, or log and drop it when the queue is full."""
        with self._lock:
            # A forked worker (gunicorn --preload) inherits the pool but not its threads.
            if self._executor is None or self._pid != os.getpid():
                self._executor = ThreadPoolExecutor(SMTP_WORKERS, thread_name_prefix="mail")
                self._pid = os.getpid()
                self._pending = set()
            if len(self._pending) >= MAX_PENDING:
                log.error(
                    "email %r to %s not sent: %d emails already queued",
                    message["Subject"],
                    message["To"],
                    MAX_PENDING,
                )
                metrics.email(sent=False)
                return
            future = self._executor.submit(deliver, message, settings)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every send queued so far has finished; False on timeout."""
        with self._lock:
            pending = list(self._pending)
        return not wait_futures(pending, timeout=timeout).not_done


def wait_for_pending(app: Flask | None = None, timeout: float | None = None) -> bool:
    """Wait for the app's queued SMTP sends (tests); False if some are still running."""
    app = app or current_app
    return app.extensions["mail_outbox"].wait(timeout)


def init_app(app: Flask) -> None:
    """Create the app's outbox; warn about settings that lose or leak emails."""
    app.extensions["mail_outbox"] = Outbox()
    if not app.config["PUBLIC_BASE_URL"]:
        log.warning(
            "PUBLIC_BASE_URL is not set: verification and password reset emails cannot be sent"
        )
    if app.config["MAIL_BACKEND"] == "console" and app.config["APP_ENV"] == "production":
        log.warning(
            "MAIL_BACKEND=console in production: emails, with their single-use "
            "links, are written to the log and never sent"
        )
