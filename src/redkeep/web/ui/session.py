"""Dashboard sessions: the token is exchanged once for a signed cookie; actions carry a CSRF token.

With ``REDKEEP_API_TOKEN`` set, ``POST /ui/login`` checks the token (constant time) and sets the
session cookie: ``HttpOnly`` (page scripts cannot read it), ``SameSite=Strict`` (other sites'
requests do not carry it), ``Path=/ui``, ``Secure`` over HTTPS, lasting
``REDKEEP_UI_SESSION_TTL`` seconds. Without a token the dashboard is open like the API, and a
session is handed out on the first page so that actions still carry a CSRF token.

The cookie is ``<id>.<expiry>.<signature>``, signed with HMAC-SHA256 under a key derived from the
API token, so it never contains the token and a new token invalidates every session. Each
session has its CSRF token (an HMAC of its id): pages put it in a ``<meta>`` tag and the
dashboard's script sends it as ``X-CSRF-Token`` with every action. Logging out revokes the
session in this process (the service is one process) and deletes the cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass

__all__ = ["COOKIE", "CSRF_HEADER", "Session", "Sessions"]

COOKIE = "redkeep_session"
CSRF_HEADER = "x-csrf-token"
_KEY_LABEL = b"redkeep dashboard session key v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Session:
    """A valid dashboard session (``new``: issued by this request, its cookie must be set)."""

    id: str
    expires: int
    csrf: str
    cookie: str
    new: bool = False


class Sessions:
    """Issues, reads and revokes the sessions of one app."""

    def __init__(self, token: str | None, ttl: float) -> None:
        self.login_required = token is not None
        # Derived from the token: sessions outlive a restart, and change with the token. Open
        # dashboards (no token) sign with a key of this process.
        secret = token.encode() if token is not None else secrets.token_bytes(32)
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()
        self._token = token.encode() if token is not None else None
        self.ttl = ttl
        self._revoked: dict[str, int] = {}

    def check_token(self, supplied: str) -> bool:
        """True when ``supplied`` is the API token (constant-time comparison)."""
        return self._token is not None and hmac.compare_digest(supplied.encode(), self._token)

    def issue(self) -> Session:
        """A new session."""
        sid = _b64(secrets.token_bytes(18))
        expires = math.ceil(time.time() + self.ttl)
        cookie = f"{sid}.{expires}.{self._sign(f'{sid}.{expires}')}"
        return Session(sid, expires, self._sign(f"csrf:{sid}"), cookie, new=True)

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie value, or None when it is absent, forged, expired or
        revoked."""
        if not cookie or len(cookie) > 200:
            return None
        sid, _, rest = cookie.partition(".")
        expiry, _, signature = rest.partition(".")
        if not expiry.isdigit():
            return None
        if not hmac.compare_digest(signature, self._sign(f"{sid}.{expiry}")):
            return None
        expires = int(expiry)
        if expires <= time.time() or sid in self._revoked:
            return None
        return Session(sid, expires, self._sign(f"csrf:{sid}"), cookie)

    def csrf_ok(self, session: Session, supplied: str | None) -> bool:
        """True when ``supplied`` is the CSRF token of ``session``."""
        return supplied is not None and hmac.compare_digest(supplied, session.csrf)

    def revoke(self, session: Session) -> None:
        """End ``session`` before its expiry (logout)."""
        now = time.time()
        self._revoked = {s: e for s, e in self._revoked.items() if e > now}
        self._revoked[session.id] = session.expires

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())
