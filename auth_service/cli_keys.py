"""``flask keys ...``: the signing keys as an operator sees them (docs/operations.md).

Each command makes its change in one transaction of its own, then drops this process's
key ring; the other instances see the change within JWKS_REFRESH_SECONDS, except that
they refuse a revoked key's tokens at once (jwt_checks.is_revoked). A rotation, an
import and a revocation append their audit event in that transaction (no actor: the CLI).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import click
from flask import current_app

from auth_service.cli_failures import DatabaseCommandGroup
from auth_service.extensions import db
from auth_service.persistence.models import SigningKey, utcnow
from auth_service.security import key_material, signing_keys
from auth_service.security.signing_keys import KeyLifeError
from auth_service.services import audit

keys_cli = DatabaseCommandGroup("keys", help="Manage the keys that sign tokens.")

_AGE = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def _age(value: str) -> timedelta:
    match = _AGE.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter(f"{value!r} is not an age like 90d, 12h or 30m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def _describe(row: SigningKey) -> dict:
    return {
        "kid": row.kid,
        "algorithm": row.algorithm,
        "state": row.state,
        "created": _when(row.created_at),
        "activates": _when(row.activates_at),
        "retires": _when(row.expires_at),
        "revoked": _when(row.revoked_at),
    }


def _changed(change, event: str, details) -> object:
    """Run ``change(connection, now)`` in its own transaction with its audit ``event``
    (``details(result)``); a refusal is one line."""
    try:
        with db.engine.begin() as connection:
            result = change(connection, utcnow())
            audit.record_on(connection, event, details=details(result))
    except (KeyLifeError, key_material.KeyMaterialError) as exc:
        raise click.ClickException(str(exc)) from None
    signing_keys.forget(current_app)
    # Apply what is now due (a first key, a promotion) and load the ring, as a server would.
    signing_keys.keyring()
    return result


def _published(key: SigningKey) -> dict:
    # Public facts only: the kid is a thumbprint every token's header carries.
    return {"kid": key.kid, "algorithm": key.algorithm, "activates_at": _when(key.activates_at)}


@keys_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of lines.")
def list_keys(as_json):
    """One line per key: kid, algorithm, state, created, activates, retires."""
    signing_keys.keyring()  # a fresh install shows the key its first request would make
    described = [_describe(row) for row in signing_keys.rows()]
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for key in described:
        click.echo(
            f"{key['kid']}\t{key['algorithm']}\t{key['state']}\tcreated {key['created']}\t"
            f"activates {key['activates']}\tretires {key['retires']}"
        )


@keys_cli.command("rotate")
@click.option(
    "--if-older-than",
    "older_than",
    default=None,
    help="Only when the current key has signed for longer than this (90d, 12h, 30m): for cron.",
)
def rotate(older_than):
    """Publish a new key of JWT_ALGORITHM; it signs after JWKS_CACHE_SECONDS."""
    if older_than is not None:
        age = _age(older_than)
        current = signing_keys.keyring().current
        (row,) = [r for r in signing_keys.rows() if r.kid == current.kid]
        if utcnow() - row.activates_at < age:
            click.echo(f"Nothing due: {row.kid} has signed since {_when(row.activates_at)}.")
            return
    key = _changed(signing_keys.rotate, audit.SIGNING_KEY_ROTATED, _published)
    click.echo(
        f"Published {key.kid} ({key.algorithm}) as next; it signs from "
        f"{_when(key.activates_at)}, and the current key retires then."
    )


@keys_cli.command("revoke")
@click.argument("kid")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def revoke(kid, yes):
    """Emergency: withdraw KID from the JWKS and refuse every token it signed, refresh
    tokens too (their sessions must sign in again)."""
    if not yes:
        click.confirm(
            f"Revoke {kid}? Every token it signed is refused and its sessions end", abort=True
        )
    state = _changed(
        lambda connection, now: signing_keys.revoke(connection, kid, now),
        audit.SIGNING_KEY_REVOKED,
        lambda was: {"kid": kid, "was": was},
    )
    current = signing_keys.keyring().current
    click.echo(f"Revoked {kid} (was {state}); {current.kid} signs now.")


@keys_cli.command("import")
@click.argument("pem_file", type=click.File("r"))
def import_key(pem_file):
    """Publish the private key in PEM_FILE (PEM, '-' for stdin) as the next key: for
    keys kept in an operator's own secret store."""
    try:
        private = key_material.from_pem(pem_file.read())
    except key_material.KeyMaterialError as exc:
        raise click.ClickException(str(exc)) from None
    key = _changed(
        lambda connection, now: signing_keys.rotate(connection, now, private),
        audit.SIGNING_KEY_ROTATED,
        lambda key: {**_published(key), "imported": True},
    )
    click.echo(
        f"Imported {key.kid} ({key.algorithm}) as next; it signs from {_when(key.activates_at)}."
    )


@keys_cli.command("export-public")
@click.argument("kid", required=False)
def export_public(kid):
    """The published public keys as a JWKS (or KID's JWK): never a private part."""
    ring = signing_keys.keyring()
    if kid is None:
        click.echo(ring.jwks.decode())
        return
    key = ring.keys.get(kid)
    if key is None or key.jwk is None:
        raise click.ClickException(f"no published key {kid!r} (HS256 keys are never published)")
    click.echo(json.dumps(key.jwk))
