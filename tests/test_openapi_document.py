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
