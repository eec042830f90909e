"""Real HTTP stand-ins for Google (an OpenID Connect provider) and GitHub, on 127.0.0.1.

Each runs in a thread under werkzeug's ``make_server`` and speaks the real
protocol: discovery, an authorisation endpoint that redirects back with
``code`` + ``state``, a token endpoint that checks the client credentials, the
redirect URI, one-time codes and the PKCE ``code_verifier``, RS256 ID tokens
signed with a key served at ``jwks_uri``, ``/userinfo``; and GitHub's
``/login/oauth/*`` plus ``/user`` and ``/user/emails`` with GitHub's JSON shapes.

Tests steer them through plain attributes: ``user`` / ``emails`` (who signs in)
and ``misbehave`` (what goes wrong), both reset before every test.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from urllib.parse import urlencode

from flask import Flask, abort, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import WSGIRequestHandler, make_server

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
# How long a "slow" endpoint keeps a request before answering anyway.
SLOW_SECONDS = 5


class QuietHandler(WSGIRequestHandler):
    """No access log lines on stderr."""

    def log_request(self, *args, **kwargs):
        pass


class Server:
    """A WSGI app served on 127.0.0.1 (a free port unless given) by a background thread."""

    def __init__(self, wsgi_app, port: int = 0):
        self._server = make_server(
            "127.0.0.1", port, wsgi_app, threaded=True, request_handler=QuietHandler
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def s256(verifier: str) -> str:
    """RFC 7636 S256 code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _client_credentials() -> tuple[str | None, str | None]:
    """client_id/secret from HTTP Basic (client_secret_basic) or the form (client_secret_post)."""
    if request.authorization and request.authorization.type == "basic":
        return request.authorization.username, request.authorization.password
    return request.form.get("client_id"), request.form.get("client_secret")


class FakeProvider:
    """State shared by both fakes: pending codes, issued access tokens, the release switch."""

    def __init__(self):
        self.codes: dict[str, dict] = {}
        self.access_tokens: dict[str, dict] = {}
        self.authorize_requests: list[dict] = []
        self.token_requests: list[dict] = []
        self.release = threading.Event()  # lets a "slow" endpoint answer at once
        self.misbehave: dict = {}
        self.server: Server | None = None

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def reset(self) -> None:
        self.codes.clear()
        self.access_tokens.clear()
        self.authorize_requests.clear()
        self.token_requests.clear()
        self.misbehave = {}
        self.release.set()
        self.release = threading.Event()

    def stop(self) -> None:
        self.release.set()
        self.server.stop()

    def _stall(self, what: str) -> None:
        """Hold the request when ``misbehave["slow"] == what`` (until released or SLOW_SECONDS)."""
        if self.misbehave.get("slow") == what:
            self.release.wait(SLOW_SECONDS)

    def _authorize(self, required_scopes: set[str], extra_required: tuple[str, ...]):
        """Check an authorisation request and send the browser back with a code (or an error)."""
        args = request.args.to_dict()
        self.authorize_requests.append(args)
        missing = [
            name
            for name in ("client_id", "redirect_uri", "state", "code_challenge", *extra_required)
            if not args.get(name)
        ]
        if (
            missing
            or args.get("response_type") != "code"
            or args["client_id"] != CLIENT_ID
            or args.get("code_challenge_method") != "S256"
            or not required_scopes <= set(args.get("scope", "").split())
        ):
            abort(400, f"bad authorization request (missing {missing})")
        back = {"state": args["state"]}
        if self.misbehave.get("error"):
            back["error"] = self.misbehave["error"]
        else:
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "redirect_uri": args["redirect_uri"],
                "challenge": args["code_challenge"],
                "nonce": args.get("nonce"),
            }
            back["code"] = code
        back.update(self.misbehave.get("callback_extra", {}))
        return redirect(f"{args['redirect_uri']}?{urlencode(back)}")

    def _redeem(self):
        """Check a token request; the pending code's record, or an OAuth error response."""
        form = request.form.to_dict()
        self.token_requests.append(form)
        self._stall("token")
        client_id, client_secret = _client_credentials()
        if (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            return None, (jsonify(error="invalid_client"), 401)
        pending = self.codes.pop(form.get("code", ""), None)  # one use only
        if (
            form.get("grant_type") != "authorization_code"
            or pending is None
            or form.get("redirect_uri") != pending["redirect_uri"]
            or s256(form.get("code_verifier", "")) != pending["challenge"]
        ):
            return None, (
                jsonify(
                    error="invalid_grant",
                    error_description="Bad code, redirect_uri or code_verifier.",
                ),
                400,
            )
        return pending, None

    def _bearer(self) -> dict:
        """The record of the access token in the Authorization header, or 401."""
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or token not in self.access_tokens:
            abort(401)
        return self.access_tokens[token]


class FakeGoogle(FakeProvider):
    """An OpenID Connect provider like accounts.google.com."""

    def __init__(self):
        super().__init__()
        self.key = RSAKey.generate_key(
            2048, parameters={"kid": "fake-google-1", "use": "sig", "alg": "RS256"}
        )
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "fake-google-1"})
        self.user: dict = {}
        self.app = self._build_app()

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid-configuration"

    def reset(self) -> None:
        super().reset()
        self.user = {
            "sub": "google-sub-1",
            "email": "victor@example.com",
            "email_verified": True,
            "name": "Victor Example",
            "picture": "https://pics.example/victor.png",
        }

    def id_token(self, pending: dict, claims: dict) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": pending["nonce"],
            "azp": CLIENT_ID,
            **claims,
        }
        if self.misbehave.get("id_token_without_profile"):
            payload.pop("name", None)
            payload.pop("picture", None)
        payload.update(self.misbehave.get("claims", {}))
        payload = {k: v for k, v in payload.items() if v is not None}
        key = self.other_key if self.misbehave.get("foreign_signature") else self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, payload, key)

    def _build_app(self) -> Flask:
        app = Flask("fake_google")

        @app.get("/.well-known/openid-configuration")
        def discovery():
            self._stall("discovery")
            if self.misbehave.get("discovery_garbage"):
                return "<html>Service Unavailable</html>", 200
            base = self.base_url
            document = dict(
                issuer=self.misbehave.get("discovery_issuer", self.issuer),
                authorization_endpoint=f"{base}/authorize",
                token_endpoint=f"{base}/token",
                userinfo_endpoint=f"{base}/userinfo",
                jwks_uri=f"{base}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=["openid", "email", "profile"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                code_challenge_methods_supported=["S256"],
                claims_supported=["sub", "email", "email_verified", "name", "picture"],
            )
            for key in self.misbehave.get("discovery_without", ()):
                document.pop(key)
            return jsonify(document)

        @app.get("/jwks")
        def jwks():
            return jsonify(keys=[self.key.as_dict(private=False)])

        @app.get("/authorize")
        def authorize():
            return self._authorize({"openid", "email", "profile"}, ("nonce",))

        @app.post("/token")
        def token():
            pending, error = self._redeem()
            if error:
                return error
            claims = {k: v for k, v in self.user.items() if v is not None}
            access_token = secrets.token_urlsafe(24)
            self.access_tokens[access_token] = claims
            body = {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 3599,
                "scope": "openid email profile",
            }
            if not self.misbehave.get("no_id_token"):
                body["id_token"] = self.id_token(pending, claims)
            return jsonify(body)

        @app.get("/userinfo")
        def userinfo():
            return jsonify(self._bearer())

        return app


class FakeGitHub(FakeProvider):
    """github.com's OAuth endpoints and api.github.com's /user and /user/emails."""

    def __init__(self):
        super().__init__()
        self.user: dict = {}
        self.emails: list[dict] | None = []
        self.app = self._build_app()

    def reset(self) -> None:
        super().reset()
        self.user = {
            "login": "octo-cat",
            "id": 583231,
            "node_id": "MDQ6VXNlcjU4MzIzMQ==",
            "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
            "type": "User",
            "site_admin": False,
            "name": "The Octocat",
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
        }
        self.emails = [
            email("octo@example.com", primary=True, verified=True),
            email("octo@users.noreply.github.com", verified=True),
        ]

    def _build_app(self) -> Flask:
        app = Flask("fake_github")

        @app.get("/login/oauth/authorize")
        def authorize():
            return self._authorize({"read:user", "user:email"}, ())

        @app.post("/login/oauth/access_token")
        def access_token():
            pending, error = self._redeem()
            if error is not None and error[1] == 400:
                # GitHub answers a bad code with 200 and an error body.
                return jsonify(
                    error="bad_verification_code",
                    error_description="The code passed is incorrect or expired.",
                )
            if error is not None:
                return error
            token = "gho_" + secrets.token_urlsafe(24)
            self.access_tokens[token] = {}
            return jsonify(access_token=token, token_type="bearer", scope="read:user,user:email")

        @app.get("/api/user")
        def user():
            self._bearer()
            self._stall("user")
            return jsonify(self.user)

        @app.get("/api/user/emails")
        def emails():
            self._bearer()
            if self.emails is None:  # the user:email scope was not granted
                return jsonify(message="Not Found"), 404
            return jsonify(self.emails)

        return app


def email(address: str, primary: bool = False, verified: bool = False) -> dict:
    """One entry of GitHub's /user/emails."""
    return {
        "email": address,
        "primary": primary,
        "verified": verified,
        "visibility": "private" if primary else None,
    }


def app_settings(google: FakeGoogle, github: FakeGitHub) -> dict:
    """The app's settings that point it at these fakes (Google and GitHub enabled)."""
    return {
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "GOOGLE_DISCOVERY_URL": google.discovery_url,
        "GITHUB_CLIENT_ID": CLIENT_ID,
        "GITHUB_CLIENT_SECRET": CLIENT_SECRET,
        "GITHUB_AUTHORIZE_URL": f"{github.base_url}/login/oauth/authorize",
        "GITHUB_TOKEN_URL": f"{github.base_url}/login/oauth/access_token",
        "GITHUB_API_URL": f"{github.base_url}/api",
    }


def main() -> None:
    """Serve both fakes on fixed ports so the login flow can be tried by hand (docs/oauth.md)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--google-port", type=int, default=9100)
    parser.add_argument("--github-port", type=int, default=9101)
    parser.add_argument("--email", default=None, help="email both providers vouch for")
    args = parser.parse_args()
    google, github = FakeGoogle(), FakeGitHub()
    for fake, port in ((google, args.google_port), (github, args.github_port)):
        fake.server = Server(fake.app, port=port).start()
        fake.reset()
    if args.email:
        google.user["email"] = args.email
        github.emails = [email(args.email, primary=True, verified=True)]
    print(
        f"GOOGLE_CLIENT_ID={CLIENT_ID}\nGOOGLE_CLIENT_SECRET={CLIENT_SECRET}\n"
        f"GOOGLE_DISCOVERY_URL={google.discovery_url}\n"
        f"GITHUB_CLIENT_ID={CLIENT_ID}\nGITHUB_CLIENT_SECRET={CLIENT_SECRET}\n"
        f"GITHUB_AUTHORIZE_URL={github.base_url}/login/oauth/authorize\n"
        f"GITHUB_TOKEN_URL={github.base_url}/login/oauth/access_token\n"
        f"GITHUB_API_URL={github.base_url}/api/\n"
        f"# signing in as {google.user['email']} (Google) / {github.emails[0]['email']} (GitHub); "
        "Ctrl-C stops",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        google.stop()
        github.stop()


if __name__ == "__main__":
    main()
