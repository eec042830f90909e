"""``python -m auth_service``: the ``flask`` command, with this service's version.

Flask's own ``flask --version`` answers before any app is imported, so it can only name
Python, Flask and Werkzeug; this group (Flask's documented "custom script") names
auth_service first. Every other command is the same: ``python -m auth_service users list``.
"""

from __future__ import annotations

import importlib.metadata
import platform

import click
from flask.cli import FlaskGroup

from auth_service import __version__, create_app


def version_message() -> str:
    """What ``--version`` prints: auth_service's version, then what ``flask --version`` does."""
    return (
        f"auth_service {__version__}\n"
        f"Python {platform.python_version()}\n"
        f"Flask {importlib.metadata.version('flask')}\n"
        f"Werkzeug {importlib.metadata.version('werkzeug')}"
    )


cli = FlaskGroup(
    name="auth_service",
    create_app=create_app,
    add_version_option=False,
    help="auth_service's commands (those of `flask`, with FLASK_APP set to this service).",
)
# click formats the message with %: escape what the version lines could hold.
cli = click.version_option(__version__, "--version", message=version_message().replace("%", "%%"))(
    cli
)

if __name__ == "__main__":
    cli.main(prog_name="python -m auth_service")
