"""/auth: email verification and password reset by emailed link."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from flask import make_response, redirect, render_template
from flask_jwt_extended import current_user
from flask_smorest import Blueprint
from markupsafe import Markup

from auth_service.errors import APIError, Error
from auth_service.http.common import access_required, json_required
from auth_service.http.schemas import (
    EmailTokenQuerySchema,
    EmailTokenSchema,
    EmailVerificationSchema,
    ErrorSchema,
    ForgotPasswordSchema,
    MessageSchema,
    ResetPasswordSchema,
)
from auth_service.security import link_tokens
from auth_service.security.limits import limit_forgot_password, limit_verify_resend
from auth_service.services import account_emails

blp = Blueprint(
    "account_email",
    __name__,
    url_prefix="/auth",
    description="Email verification and password reset",
)

VERIFY_MESSAGES = {
    account_emails.VERIFIED: "Your email address is verified.",
    account_emails.ALREADY_VERIFIED: "Your email address was already verified.",
}
# What the frontend's /verify-email page is told (?status=) for each failure.
REDIRECT_STATUS = {Error.LINK_EXPIRED.code: "expired", Error.INVALID_LINK.code: "invalid"}
# The page behind a verification link: its script and styles are inline, each allowed
# by its hash, so the page loads nothing and talks to nothing but this origin.
_PAGES = Path(__file__).resolve().parent.parent / "templates" / "pages"
VERIFY_PAGE_SCRIPT = (_PAGES / "verify_email.js").read_text(encoding="utf-8")
VERIFY_PAGE_STYLE = (_PAGES / "verify_email.css").read_text(encoding="utf-8")


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


VERIFY_PAGE_CSP = (
    f"default-src 'none'; script-src {_csp_hash(VERIFY_PAGE_SCRIPT)}; "
    f"style-src {_csp_hash(VERIFY_PAGE_STYLE)}; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
FORGOT_PASSWORD_ANSWER = (
    "If an account uses this email address, a link to reset its password has been sent to it."
)


@blp.route("/verify-email/resend", methods=["POST"])
@access_required(blp)
@limit_verify_resend
@blp.response(202, MessageSchema, description="A verification email is on its way")
@blp.alt_response(409, schema=ErrorSchema, description="The email address is already verified")
def resend_verification():
    """Send the calling user another email verification link."""
    account_emails.resend_verification(current_user)
    return {"message": f"A verification link has been sent to {current_user.email}."}


@blp.route("/verify-email", methods=["GET"])
@blp.arguments(EmailTokenQuerySchema(), location="query")
@blp.response(
    200,
    EmailVerificationSchema,
    description="An unverified address: an HTML page "
    "whose button POSTs the token (nothing is verified yet). Already verified: "
    "this JSON",
)
@blp.alt_response(
    302,
    description="With FRONTEND_URL set: an unverified address redirects to "
    "FRONTEND_URL/verify-email#token=... (the frontend POSTs it); otherwise to "
    "its /verify-email page with ?status=already_verified, expired or invalid",
)
@blp.alt_response(400, schema=ErrorSchema, description="Invalid, used or expired link")
def verify_email_link(args):
    """The link in a verification email: a page that POSTs the token; it changes nothing itself.

    Mail scanners open links to check them; a GET or HEAD that verified would
    let one vouch for a mailbox nobody read (docs/adr/0401).
    """
    try:
        user = account_emails.check_verification_token(args["token"])
    except APIError as error:
        target = link_tokens.frontend_link(
            "/verify-email", status=REDIRECT_STATUS.get(error.error, "invalid")
        )
        if target is None:
            raise
        return redirect(target)
    if user.email_verified is not None:
        status = account_emails.ALREADY_VERIFIED
        target = link_tokens.frontend_link("/verify-email", status=status)
        return (
            redirect(target) if target else {"status": status, "message": VERIFY_MESSAGES[status]}
        )
    # In the fragment, the token never reaches the frontend's server or its logs.
    target = link_tokens.frontend_link("/verify-email", fragment={"token": args["token"]})
    if target is not None:
        response = redirect(target)
    else:
        response = make_response(
            render_template(
                "pages/verify_email.html",
                script=Markup(VERIFY_PAGE_SCRIPT),
                style=Markup(VERIFY_PAGE_STYLE),
            )
        )
        response.headers["Content-Security-Policy"] = VERIFY_PAGE_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/verify-email", methods=["POST"])
@json_required
@blp.arguments(EmailTokenSchema())
@blp.response(200, EmailVerificationSchema)
@blp.alt_response(400, schema=ErrorSchema, description="Invalid, used or expired token")
def verify_email(data):
    """Verify an email address with the token from the emailed link (its page, frontends, API clients)."""
    status = account_emails.verify_email(data["token"])
    return {"status": status, "message": VERIFY_MESSAGES[status]}


@blp.route("/forgot-password", methods=["POST"])
@limit_forgot_password
@json_required
@blp.arguments(ForgotPasswordSchema())
@blp.response(202, MessageSchema, description="The same answer whether or not the account exists")
def forgot_password(data):
    """Email a password reset link, if the address belongs to an account."""
    account_emails.request_password_reset(data["email"])
    return {"message": FORGOT_PASSWORD_ANSWER}


@blp.route("/reset-password", methods=["GET"])
@blp.arguments(EmailTokenQuerySchema(), location="query")
@blp.response(200, MessageSchema, description="The token is good; POST it with a new password")
@blp.alt_response(400, schema=ErrorSchema, description="Invalid, used or expired link")
def check_reset_link(args):
    """The link in a reset email (without FRONTEND_URL): check the token without spending it."""
    account_emails.check_reset_token(args["token"])
    return {
        "message": "This link is valid: POST /auth/reset-password with "
        '{"token", "new_password"} to set a new password.'
    }


@blp.route("/reset-password", methods=["POST"])
@json_required
@blp.arguments(ResetPasswordSchema())
@blp.response(200, MessageSchema, description="Password set; every session has ended")
@blp.alt_response(400, schema=ErrorSchema, description="Invalid, used or expired token")
def reset_password(data):
    """Set a new password with the token from a reset email; every session ends."""
    account_emails.reset_password(data["token"], data["new_password"])
    return {"message": "Your password has been changed. Log in with the new password."}
