"""Extension objects, created here and bound to the app in ``create_app``."""

from authlib.integrations.flask_client import OAuth
from flask_jwt_extended import JWTManager as _JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_smorest import Api as _Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from auth_service.http.schemas import ErrorSchema, openapi_attribute_functions


class Base(DeclarativeBase):
    """Declarative base for every model."""


class Api(_Api):
    """flask-smorest Api that documents and renders our single error shape."""

    ERROR_SCHEMA = ErrorSchema

    def init_app(self, app, **kwargs):
        """Also document what the fields check in code (NUL bytes, password policy)."""
        super().init_app(app, **kwargs)
        # init_app builds a fresh spec and converter, so these are added once per app.
        for function in openapi_attribute_functions(app.config):
            self.ma_plugin.converter.add_attribute_function(function)

    def handle_http_exception(self, error):
        """Render every HTTP error (smorest's and werkzeug's) in the shared shape."""
        from auth_service.errors import http_error_response

        return http_error_response(error)


class JWTManager(_JWTManager):
    """flask-jwt-extended, verifying tokens with ``auth_service.security.jwt_checks.decode``.

    ``_decode_jwt_from_config`` is the one place every decode goes through
    (``decode_token``, ``jwt_required``, ``verify_jwt_in_request``). flask-jwt-extended
    is pinned in requirements.txt, and the tests of tests/security cover every rejection
    this override must keep.
    """

    def _decode_jwt_from_config(self, encoded_token: str, csrf_value=None,
                                allow_expired: bool = False) -> dict:
        from auth_service.security.jwt_checks import decode

        return decode(encoded_token, csrf_value, allow_expired)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
# Google and GitHub clients, registered per app by auth_service.integrations.oauth_providers.
oauth = OAuth()
jwt = JWTManager()
api = Api()
# Limits are attached per view (auth_service.security.limits); none apply by default.
limiter = Limiter(key_func=get_remote_address)
