"""The one place the version is written: pyproject.toml reads it from here (setuptools'
``attr:``), ``auth_service.__version__``, /healthz and ``python -m auth_service --version``
report it. ``.devN`` while CHANGELOG.md's "Unreleased" collects changes; a release drops it
and gives that section the number.
"""

__version__ = "0.1.0.dev0"
