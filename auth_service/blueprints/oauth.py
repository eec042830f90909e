"""Google and GitHub login (OAuth 2 / OpenID Connect).

Registered now so the URL space and docs are in place; the provider routes
(/auth/google/*, /auth/github/*) are added by the OAuth work.
"""

from flask_smorest import Blueprint

blp = Blueprint("oauth", __name__, url_prefix="/auth", description="Google and GitHub login")
