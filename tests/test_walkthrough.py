"""The README's curl walkthrough, step by step."""


def test_signup_login_me_refresh_logout(client, auth):
    signup = client.post(
        "/auth/signup",
        json={
            "email": "user@example.com",
            "username": "testuser",
            "password": "Password123",
            "full_name": "Test User",
        },
    )
    assert signup.status_code == 201
    assert signup.json["email"] == "user@example.com"
    assert "password" not in signup.json and "password_hash" not in signup.json

    login = client.post(
        "/auth/login", json={"email": "user@example.com", "password": "Password123"}
    )
    assert login.status_code == 200
    body = login.json
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["access_token"] and body["refresh_token"]

    me = client.get("/auth/me", headers=auth.bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json["username"] == "testuser"

    refreshed = client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.json["refresh_token"] != body["refresh_token"]

    logout = client.post(
        "/auth/logout",
        headers=auth.bearer(body["access_token"]),
        json={"refresh_token": refreshed.json["refresh_token"]},
    )
    assert logout.status_code == 200

    again = client.post("/auth/refresh", json={"refresh_token": refreshed.json["refresh_token"]})
    assert again.status_code == 401
    assert again.json["error"] == "token_revoked"
