"""Extension objects, created here and bound to the app in ``create_app``."""

from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_smorest import Api as _Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from auth_service.schemas import ErrorSchema


class Base(DeclarativeBase):
    """Declarative base for every model."""


class Api(_Api):
    """flask-smorest Api that documents and renders our single error shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        """Render every HTTP error (smorest's and werkzeug's) in the shared shape."""
        from auth_service.errors import http_error_response

        return http_error_response(error)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
api = Api()
