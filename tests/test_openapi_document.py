"""The OpenAPI document states what the fields check in code (found by tests/fuzz)."""

from __future__ import annotations

import re

from auth_service.http.schemas import SignupSchema, openapi_attribute_functions


def _schemas(client) -> dict:
    return client.get("/openapi.json").json["components"]["schemas"]


def test_new_passwords_document_the_configured_length_policy(client):
    for name, field in (("Signup", "password"), ("ChangePassword", "new_password")):
        prop = _schemas(client)[name]["properties"][field]
        assert (prop["minLength"], prop["maxLength"]) == (8, 128)

    # Another configuration documents its own policy (checked on the converter function
    # alone: a second app would rebind the shared flask-smorest Api and its spec).
    functions = openapi_attribute_functions({"PASSWORD_MIN_LENGTH": 12, "PASSWORD_MAX_LENGTH": 64})
    password = SignupSchema().fields["password"]
    merged = {}
    for function in functions:
        merged.update(function(None, password, ret=dict(merged)))
    assert (merged["minLength"], merged["maxLength"]) == (12, 64)


def test_text_fields_document_that_nul_is_refused(client):
    schemas = _schemas(client)
    pattern = schemas["Login"]["properties"]["email"]["pattern"]
    assert re.fullmatch(pattern, "alice@example.com")
    assert not re.fullmatch(pattern, "alice\x00@example.com")
    # A field with its own pattern keeps it (and it excludes NUL already).
    username = schemas["Signup"]["properties"]["username"]["pattern"]
    assert username == r"^[A-Za-z0-9_.-]{3,50}$"
    query = client.get("/openapi.json").json["paths"]["/users/"]["get"]["parameters"]
    assert {p["name"]: p["schema"].get("pattern") for p in query}["q"] == pattern


def test_nul_in_text_is_refused_as_documented(client):
    response = client.post("/auth/login", json={"email": "a\x00@example.com", "password": "x"})
    assert response.status_code == 422
    assert "NUL" in response.json["errors"]["json"]["email"][0]


def test_oauth_callback_query_fits_gunicorn_request_line(client):
    """gunicorn refuses request lines over 4094 bytes with an HTML 414 the app never sees."""
    parameters = client.get("/openapi.json").json["paths"]["/auth/{provider}/callback"]["get"]
    longest = "".join(
        f"&{p['name']}=" + "x" * p["schema"]["maxLength"]
        for p in parameters["parameters"]
        if p["in"] == "query"
    )
    request_line = f"GET /auth/google/callback?{longest[1:]} HTTP/1.1"
    assert len(request_line) <= 4094


# --- what every operation has in common (auth_service.http.api_docs) ------------------

OPERATION_ID = re.compile(r"^[a-z][A-Za-z0-9]+$")
BODY_METHODS = {"post", "put", "patch", "delete"}


def _operations(client):
    for path, item in client.get("/openapi.json").json["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def _url(path: str) -> str:
    """A documented path with its parameters filled in."""
    values = {
        "provider": "google",
        "user_id": "1",
        "session_id": "x",
        "factor_id": "x",
        "passkey_id": "x",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def test_every_operation_has_a_unique_readable_operation_id(client):
    ids = [operation.get("operationId") for _, _, operation in _operations(client)]
    assert all(isinstance(i, str) and OPERATION_ID.fullmatch(i) for i in ids), ids
    assert len(ids) == len(set(ids))


def test_operation_ids_clients_rely_on_stay_put(client):
    """Client generators name their methods after these: a rename breaks clients."""
    ids = {(path, method): op["operationId"] for path, method, op in _operations(client)}
    assert ids[("/auth/login", "post")] == "login"
    assert ids[("/auth/signup", "post")] == "signup"
    assert ids[("/auth/refresh", "post")] == "refreshTokens"
    assert ids[("/auth/logout", "post")] == "logout"
    assert ids[("/auth/change-password", "put")] == "changePassword"
    assert ids[("/auth/{provider}/login", "get")] == "startProviderLogin"
    assert ids[("/users/me", "get")] == "getMe"
    assert ids[("/users/", "get")] == "listUsers"


def test_operation_id_is_the_view_name_in_camel_case():
    from auth_service.http.api_docs import operation_id

    assert operation_id("users.list_identities", "get", 1) == "listIdentities"
    assert operation_id("mfa.confirm_totp_setup", "post", 1) == "confirmTotpSetup"
    assert operation_id("things.thing", "put", 2) == "putThing"


def test_every_body_operation_documents_413_and_415_and_answers_them(client):
    checked = 0
    for path, method, operation in _operations(client):
        if method not in BODY_METHODS:
            continue
        assert {"413", "415"} <= set(operation["responses"]), (path, method)
        url = _url(path)
        text = client.open(url, method=method, data="a=b", content_type="text/plain")
        assert text.status_code == 415, (path, method)
        large = client.open(
            url, method=method, data="x" * (64 * 1024 + 1), content_type="application/json"
        )
        assert large.status_code == 413, (path, method)
        assert large.json["error"] == "payload_too_large"
        checked += 1
    assert checked >= 15


def test_rate_limited_operations_document_429_with_retry_after(app, client):
    document = client.get("/openapi.json").json
    limited = set()
    for rule in app.url_map.iter_rules():
        fails_open = getattr(app.view_functions[rule.endpoint], "rate_limit_fails_open", None)
        if fails_open is None:
            continue
        path = re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            responses = document["paths"][path][method.lower()]["responses"]
            assert "429" in responses, (path, method)
            # A limit that cannot count answers 503 unless it fails open.
            assert ("503" in responses) is (not fails_open), (path, method)
            limited.add(rule.endpoint)
    assert {"auth.login", "auth.signup", "account_email.forgot_password"} <= limited
    shared = document["components"]["responses"]
    retry_after = {"$ref": "#/components/headers/RetryAfter"}
    for path, method, operation in _operations(client):
        response = operation["responses"].get("429")
        if response is not None:
            if "$ref" in response:
                response = shared[response["$ref"].rsplit("/", 1)[-1]]
            assert response["headers"]["Retry-After"] == retry_after, (path, method)
