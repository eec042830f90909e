"""Extension objects, created here and bound to the app in ``create_app``.

Nothing here imports the package: the app factory configures what needs it.
"""

from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for every model."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
# Its loaders are registered by auth_service.security.jwt_checks, token_form and token_issuing.
jwt = JWTManager()
# Documents the shared error shape (auth_service.http.api_docs).
api = Api()
