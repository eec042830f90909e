"""Other parties: the OAuth providers and the mail server."""
