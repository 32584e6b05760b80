"""CSRF protection for every state-changing dashboard request.

Two independent checks, both must pass:

1. Where the request came from. Browsers say it: `Sec-Fetch-Site` must be `same-origin` (or
   `none`, a user-typed request), and an `Origin` header, when sent, must name this host.
2. A token only our own pages know. Each browser holds a random `al_csrf` cookie (HTTP-only,
   SameSite=Lax); every form carries `HMAC(key, cookie | user id)` in a hidden field (fetch()
   calls send it as `X-CSRF-Token`). A cross-site page can neither read the cookie nor compute
   the HMAC, and binding the user id means a token from an attacker's own session (planted
   with a tossed cookie) is worthless in the victim's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

COOKIE = "al_csrf"
FORM_FIELD = "csrf_token"
HEADER = "x-csrf-token"
_ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


class CsrfRefused(Exception):
    """The request failed a CSRF check; it is answered 403 and changes nothing."""


def derive_key(jwt_secret: str) -> bytes:
    """The CSRF MAC key, derived from the JWT secret with its own label (no new secret)."""
    return hmac.new(jwt_secret.encode(), b"agentlink/dashboard-csrf/v1", hashlib.sha256).digest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def token_for(key: bytes, secret: str, user_id: str | None) -> str:
    message = f"{secret}|{user_id or '-'}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def check_origin(request: Request) -> None:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in _ALLOWED_FETCH_SITES:
        raise CsrfRefused("cross-site request")
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
            raise CsrfRefused("foreign origin")


def check_token(key: bytes, secret: str | None, user_id: str | None, sent: str | None) -> None:
    if not secret or not sent:
        raise CsrfRefused("missing token")
    if not hmac.compare_digest(token_for(key, secret, user_id), sent):
        raise CsrfRefused("wrong token")
