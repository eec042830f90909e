"""Schemathesis hooks of the fuzz run (loaded through SCHEMATHESIS_HOOKS).

Some operations refuse schema-valid requests by design, for reasons no JSON
Schema can state: the password sent is not the account's, the emailed link's
token is unknown, expired or spent, the new password is too easy to guess
(zxcvbn, PASSWORD_MIN_STRENGTH), the two-step verification code is wrong, or a
body gives both or neither of ``code`` and ``recovery_code``. schemathesis.toml
lets positive_data_acceptance accept 400 and 422 on exactly these operations;
this check then requires such a refusal to be precisely the documented one, so
any other 400/422 still fails.
"""

from __future__ import annotations

import json

import schemathesis

# The same skip as the built-in checks: coverage probes of the request's shape.
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

GUESSABLE = "This password is too easy to guess"
ONE_CODE = "Give either code or recovery_code."
# The login's second step also takes a passkey assertion.
ONE_SECOND_FACTOR = "Give one of code, recovery_code or passkey."
# auth_service/http/admin_schemas.py: POST /users/ without a password or an invite.
PASSWORD_OR_INVITE = "Required unless send_invite is true."
REFUSAL_STATUSES = (400, 422)


def error(*codes: str) -> tuple:
    """A refusal whose ``error`` code is one of ``codes``."""
    return ("error", set(codes))


def guessable(field: str) -> tuple:
    """A 422 whose only complaint is zxcvbn's, on ``field``."""
    return ("complaint", field, GUESSABLE)


def one_code() -> tuple:
    """A 422 whose only complaint is that the body has both or neither of ``code`` and
    ``recovery_code`` (one of them is required: the schema lists both as optional)."""
    return ("complaint", "code", ONE_CODE)


# Operation -> status -> the only refusal of valid data allowed with that status.
EXPECTED_REFUSALS = {
    "POST /auth/signup": {422: guessable("password")},
    # A superuser creating an account: the same password rule, and a password unless the
    # user is invited to choose one.
    "POST /users/": {422: ("complaint", "password", (GUESSABLE, PASSWORD_OR_INVITE))},
    "PUT /auth/change-password": {400: error("invalid_password"), 422: guessable("new_password")},
    "DELETE /users/me": {400: error("invalid_password", "password_required")},
    # Linking a provider is confirmed with the account's password.
    "POST /auth/{provider}/link": {400: error("invalid_password", "password_required")},
    "GET /auth/verify-email": {400: error("invalid_token")},
    "POST /auth/verify-email": {400: error("invalid_token")},
    "GET /auth/reset-password": {400: error("invalid_token")},
    "POST /auth/reset-password": {400: error("invalid_token"), 422: guessable("new_password")},
    # Two-step verification: a made-up code is wrong.
    "POST /auth/mfa/totp/verify": {400: error("wrong_mfa_code")},
    "POST /auth/mfa/challenge": {400: error("wrong_mfa_code"), 422: one_code()},
    "POST /auth/login/mfa": {422: ("complaint", "code", ONE_SECOND_FACTOR)},
    # Passkeys: made-up credentials are not valid answers to a live challenge.
    "POST /auth/passkeys/register": {400: error("passkey_registration_failed")},
    "POST /auth/mfa/passkey": {400: error("wrong_passkey")},
}


def _is_documented_refusal(body, kind: str, expected, message: str | tuple = "") -> bool:
    if not isinstance(body, dict):
        return False
    if kind == "error":
        return body.get("error") in expected
    # Only that rule on that field, nothing else.
    errors = body.get("errors")
    messages = errors.get("json") if isinstance(errors, dict) else None
    return (
        isinstance(messages, dict)
        and list(messages) == [expected]
        # str.startswith takes one prefix or a tuple of them.
        and all(str(m).startswith(message) for m in messages[expected])
    )


@schemathesis.check
def only_documented_refusals(ctx, response, case):
    """A schema-valid request refused with 400/422 must be refused for the documented reason."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or is_unexpected_http_status_case(case):
        return None
    expected = EXPECTED_REFUSALS.get(f"{case.method.upper()} {case.path}")
    if expected is None or response.status_code not in REFUSAL_STATUSES:
        return None
    rule = expected.get(response.status_code)
    if rule is None:
        raise AssertionError(
            f"Valid data refused with {response.status_code}: {response.content[:500]!r}"
        )
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not _is_documented_refusal(body, *rule):
        raise AssertionError(
            f"Valid data refused with {response.status_code} for an undocumented reason: "
            f"{response.content[:500]!r}"
        )
    return None
