"""Extension objects, created here and bound to the app in ``create_app``."""

from authlib.integrations.flask_client import OAuth
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_smorest import Api as _Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from auth_service.schemas import ErrorSchema, openapi_attribute_functions


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


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
# Google and GitHub clients, registered per app by auth_service.oauth_clients.
oauth = OAuth()
jwt = JWTManager()
api = Api()
# Limits are attached per view (auth_service.limits); none apply by default.
limiter = Limiter(key_func=get_remote_address)
