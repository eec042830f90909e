"""POST /users/ with send_invite: the new account is emailed a link to choose its password."""

from __future__ import annotations

from helpers import stored_user
from mail_helpers import html_part, link_in, text_part, token_of

INVITE = "Your new account: choose a password"
PASSWORD = "bob's chosen passphrase 5"


def test_an_invited_user_chooses_a_password_by_the_emailed_link(
    client, smtp, auth, superuser_headers, in_db
):
    response = client.post(
        "/users/",
        json={"email": "bob@example.com", "username": "bob", "send_invite": True},
        headers=superuser_headers,
    )
    assert response.status_code == 201, response.json
    assert response.json["has_password"] is False
    message = smtp.last("bob@example.com", INVITE)
    link = link_in(message)
    assert link.startswith("https://auth.example.test/auth/reset-password?token=")
    assert "administrator created an account" in text_part(message)
    assert f'href="{link}"' in html_part(message).replace("&amp;", "&")

    chosen = client.post(
        "/auth/reset-password", json={"token": token_of(link), "new_password": PASSWORD}
    )
    assert chosen.status_code == 200, chosen.json
    assert auth.login("bob@example.com", PASSWORD).status_code == 200
    assert stored_user(in_db, "bob@example.com").email_verified is not None
    # Spent: the link was bound to the account having no password.
    again = client.post(
        "/auth/reset-password", json={"token": token_of(link), "new_password": PASSWORD + "x"}
    )
    assert again.status_code == 400


def test_no_invite_no_email(client, smtp, superuser_headers):
    response = client.post(
        "/users/",
        json={"email": "bob@example.com", "username": "bob", "password": PASSWORD},
        headers=superuser_headers,
    )
    assert response.status_code == 201
    assert smtp.to("bob@example.com") == []
