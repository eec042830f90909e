"""bench/floor_app.py with auth_service's own response headers: how much of the gap
between ``GET /auth/me`` and its floor is the headers every answer of the app carries.

The floor answers with two headers; the app adds X-Content-Type-Options,
Referrer-Policy, X-Frame-Options, Content-Security-Policy, Cache-Control and
X-Request-ID, through the same hooks it uses itself. Not the floor of the benchmark (the
issue defines that one); an experiment: ``BENCH_FLOOR_APP=bench.floor_headers:app
BENCH_ONLY=floor_select,me BENCH_OUTPUT=floor-headers make bench``.
"""

from auth_service.observability.request_log import tag_response
from auth_service.security.headers import add_security_headers
from bench.floor_app import app

app.after_request(tag_response)
app.after_request(add_security_headers)
