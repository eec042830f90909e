"""Tokens, passwords, limits, CORS, headers and the other checks a request passes."""
