"""The tokens a login or a refresh must sign at least, for the floors of bench/run.py."""

from __future__ import annotations

import time
import uuid

import jwt

from auth_service.security import key_material

ACCESS_SECONDS = 900
REFRESH_SECONDS = 30 * 24 * 3600


def signed_pair(key, algorithm: str, issuer: str, user_id: str, session_id: str) -> dict:
    """An access and a refresh token with the claims and headers of the app's (RFC 9068
    access token; refresh token with its CSRF value), signed with ``key`` by PyJWT."""
    now = int(time.time())
    common = {"iss": issuer, "sub": user_id, "iat": now, "sid": session_id, "ver": 0}
    access = {
        **common,
        "aud": "api",
        "client_id": "auth_service",
        "exp": now + ACCESS_SECONDS,
        "jti": str(uuid.uuid4()),
        "aal": "aal1",
        "amr": ["pwd"],
        "auth_time": now,
    }
    refresh = {
        **common,
        "aud": issuer,
        "type": "refresh",
        "exp": now + REFRESH_SECONDS,
        "jti": str(uuid.uuid4()),
        "csrf": str(uuid.uuid4()),
    }
    return {
        "access_token": jwt.encode(
            access, key, algorithm=algorithm, headers={"kid": "floor", "typ": "at+jwt"}
        ),
        "refresh_token": jwt.encode(
            refresh, key, algorithm=algorithm, headers={"kid": "floor", "typ": "refresh+jwt"}
        ),
        "token_type": "Bearer",
        "expires_in": ACCESS_SECONDS,
    }


def pair_seconds(algorithm: str, count: int = 200) -> float:
    """Median time of signing one pair with a new key of ``algorithm``, on this machine now."""
    key = key_material.generate(algorithm)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        signed_pair(key, algorithm, "https://auth.bench.test", "1", "session")
        times.append(time.perf_counter() - started)
    return sorted(times)[count // 2]
