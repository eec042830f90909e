"""Account, session and identity rules: what the views call. Services never commit."""
