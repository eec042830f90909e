"""The audit events of Google/GitHub sign-ins: a new account, a link, an unlink."""

from __future__ import annotations

from audit_helpers import all_events
from dance import sign_in
from helpers import bearer, claims, mark_email_verified


def test_a_provider_signup_links_and_unlinks_are_recorded(client, auth, google, github, in_db):
    google.user["email"] = "octo@example.com"
    created = sign_in(client, "google")
    assert created.status_code == 200
    user_id = int(claims(created.json["access_token"])["sub"])
    github_login = sign_in(client, "github")  # the same verified address: linked
    assert github_login.status_code == 200
    headers = bearer(github_login.json["access_token"])
    assert client.delete("/users/me/identities/github", headers=headers).status_code == 204

    events = [(e.type, e.user_id, e.details) for e in all_events(in_db)]
    assert events == [
        ("signup", user_id, {"method": "google"}),
        ("login_succeeded", user_id, {"methods": ["fed"], "aal": "aal1"}),
        ("identity_linked", user_id, {"provider": "github", "password_removed": False}),
        ("login_succeeded", user_id, {"methods": ["fed"], "aal": "aal1"}),
        ("identity_unlinked", user_id, {"provider": "github"}),
    ]


def test_linking_a_password_account_records_that_the_password_went(client, auth, google, in_db):
    auth.signup(email="victor@example.com", username="vic")
    mark_email_verified(in_db, "victor@example.com")
    google.user["email"] = "victor@example.com"
    assert sign_in(client, "google").status_code == 200
    linked = [e for e in all_events(in_db) if e.type == "identity_linked"]
    assert [e.details for e in linked] == [{"provider": "google", "password_removed": True}]


def test_an_unlinked_identity_is_told_by_email_unless_turned_off(
    client, google, github, smtp, oauth_app, monkeypatch
):
    google.user["email"] = "octo@example.com"
    sign_in(client, "google")
    headers = bearer(sign_in(client, "github").json["access_token"])
    assert client.delete("/users/me/identities/github", headers=headers).status_code == 204
    [message] = smtp.to("octo@example.com", "GitHub was unlinked from your account")
    assert "token" not in message.get_body(("plain",)).get_content()
    monkeypatch.setitem(oauth_app.config, "ALERT_IDENTITY_CHANGES", False)
    sign_in(client, "github")
    assert client.delete("/users/me/identities/github", headers=headers).status_code == 204
    assert len(smtp.to("octo@example.com", "GitHub was unlinked from your account")) == 1
    assert smtp.to("octo@example.com", "GitHub was linked to your account") != []
