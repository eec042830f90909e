"""Alerts to users: the audit events an account's owner should hear of, as emails.

A listener of the audit trail (``audit.listen``): it runs as an event is recorded, in
its transaction, renders the email then and hands it over after the commit, so a
rolled-back change alerts nobody. Each alert has its setting (ALERT_*). None carries a
link or value that signs anyone in.

A device is "new" when the request presents no valid device cookie of the account
(auth_service.security.devices) and no sign-in or signup of the account in the last
NEW_DEVICE_DAYS came from the same browser family on the same network (IPv4 /24, IPv6
/48). An account's very first sign-in alerts nobody.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, current_app, has_request_context

from auth_service.extensions import db
from auth_service.integrations.oauth_providers import LABELS
from auth_service.persistence.models import AuditEvent, Session, User
from auth_service.security import devices
from auth_service.services import account_emails, audit

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"))
_SYSTEMS = (
    ("Windows", "Windows"),
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("Mac OS X", "macOS"),
    ("Android", "Android"),
    ("Linux", "Linux"),
)
# The most recent sign-ins looked at: enough for any real account's devices.
RECENT_SIGN_INS = 200


def device_family(user_agent: str | None) -> str:
    """The browser and system a User-Agent names, roughly ("Firefox on Linux")."""
    agent = user_agent or ""
    browser = next((name for mark, name in _BROWSERS if mark in agent), None)
    if browser is None:
        browser = "Safari" if "Safari/" in agent else (re.split(r"[/ ]", agent)[0] or "unknown")
    system = next((name for mark, name in _SYSTEMS if mark in agent), None)
    return f"{browser[:40]} on {system}" if system else browser[:40]


def network(ip: str | None) -> str:
    """The client's network: IPv4 /24, IPv6 /48 (a home or office, roughly)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return ip or ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _device(user_agent: str | None, ip: str | None) -> tuple[str, str]:
    return device_family(user_agent), network(ip)


def _is_new_device(user_id: int, event: dict) -> bool:
    """Whether the sign-in of ``event`` comes from a device the account has not used
    lately (module docstring); the cookie is checked only when the history says new."""
    since = event["occurred_at"] - timedelta(days=current_app.config["NEW_DEVICE_DAYS"])
    seen = db.session.execute(_RECENT_DEVICES, {"user_id": user_id, "since": since}).all()
    if not seen:
        return False  # the account's first sign-in
    this = _device(event["user_agent"], event["ip"])
    return all(_device(agent, ip) != this for agent, ip, lately in seen if lately)


_RECENT = (
    sa.select(AuditEvent.user_agent, AuditEvent.ip, AuditEvent.occurred_at)
    .where(
        AuditEvent.user_id == sa.bindparam("user_id"),
        AuditEvent.type.in_((audit.SIGNUP, audit.LOGIN_SUCCEEDED)),
    )
    .order_by(AuditEvent.id.desc())
    .limit(RECENT_SIGN_INS)
    .subquery()
)
# The distinct (user agent, address) pairs of the recent sign-ins, each with whether it
# was seen within NEW_DEVICE_DAYS (``since``): an account that signs in from one browser
# a hundred times is one row, not a hundred ORM objects to compare.
_RECENT_DEVICES = sa.select(
    _RECENT.c.user_agent,
    _RECENT.c.ip,
    _RECENT.c.occurred_at >= sa.bindparam("since", type_=AuditEvent.occurred_at.type),
).distinct()


def _new_sign_in(event: dict) -> None:
    if not _is_new_device(event["user_id"], event):
        return
    user = db.session.get(User, event["user_id"])
    if user is None or devices.presented_device(user) is not None:
        return
    frontend = current_app.config.get("FRONTEND_URL")
    account_emails.send_new_sign_in(
        user,
        event["occurred_at"],
        device_family(event["user_agent"]),
        event["ip"],
        frontend.rstrip("/") + "/" if frontend else None,
    )


def _refresh_reuse(event: dict) -> None:
    user = db.session.get(User, event["user_id"])
    session = db.session.get(Session, event["session_id"]) if event["session_id"] else None
    if user is None or session is None:
        return
    account_emails.send_refresh_reuse(
        user,
        event["occurred_at"],
        session.created_at,
        device_family(session.user_agent),
        session.ip_address,
    )


def _identity_unlinked(event: dict) -> None:
    user = db.session.get(User, event["user_id"])
    if user is not None:
        provider = event["details"]["provider"]
        account_emails.send_identity_unlinked(user, LABELS.get(provider, provider))


_ALERTS = {
    audit.LOGIN_SUCCEEDED: ("ALERT_NEW_SIGN_IN", _new_sign_in),
    audit.REFRESH_REUSE_DETECTED: ("ALERT_REFRESH_REUSE", _refresh_reuse),
    audit.IDENTITY_UNLINKED: ("ALERT_IDENTITY_CHANGES", _identity_unlinked),
}


def on_event(event: dict) -> None:
    """Send the alert an event calls for, if its setting is on."""
    alert = _ALERTS.get(event["type"])
    if alert is not None and current_app.config[alert[0]] and has_request_context():
        alert[1](event)


def init_app(app: Flask) -> None:
    """Listen to the audit trail of ``app``."""
    audit.listen(app, on_event)
