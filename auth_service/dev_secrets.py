"""Development-only secrets, generated once and kept in ``instance/``."""

import json
import secrets
import sys

from config import INSTANCE_DIR

DEV_SECRETS_FILE = INSTANCE_DIR / "dev-secrets.json"


def ensure_dev_secrets(settings: dict) -> None:
    """Fill missing SECRET_KEY / JWT_SECRET_KEY from a generated, persisted file.

    Kept on disk so that tokens survive a restart of ``make run``.
    """
    missing = [k for k in ("SECRET_KEY", "JWT_SECRET_KEY") if not settings.get(k)]
    if not missing:
        return
    stored = {}
    if DEV_SECRETS_FILE.exists():
        stored = json.loads(DEV_SECRETS_FILE.read_text())
    if any(key not in stored for key in missing):
        for key in missing:
            stored.setdefault(key, secrets.token_urlsafe(48))
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        DEV_SECRETS_FILE.touch(mode=0o600)
        DEV_SECRETS_FILE.write_text(json.dumps(stored, indent=2))
        print(
            f"auth_service: generated development secrets for {', '.join(missing)} "
            f"in {DEV_SECRETS_FILE} (set them in .env or the environment to choose your own)",
            file=sys.stderr,
        )
    for key in missing:
        settings[key] = stored[key]
