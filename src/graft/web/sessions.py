"""Browser sessions: a Graft token exchanged for an HttpOnly cookie, and the CSRF token of
every form.

The cookie holds a random session id; the database holds only its SHA-256, the token it was
made from and the session's CSRF token. A session is valid while its row exists, it has not
reached `expires_at`, and its token is still valid: revoking (or rotating past the grace
period) the token ends its sessions, and signing out deletes the row, on every replica at
once. One indexed query per page; pages are not a hot path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from graft.accounts import tokens
from graft.accounts.models import Principal
from graft.accounts.service import principal_of
from graft.db import Database
from graft.db.models import Account, Organization, Token, WebSession, utcnow

SESSION_COOKIE = "graft_session"
#: the sign-in form's CSRF token (double submit: cookie and form field must agree)
SIGNIN_COOKIE = "graft_signin"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_equal(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected.encode(), (given or "").encode())


@dataclass(frozen=True, slots=True)
class WebUser:
    """Who a page is for: the token's principal, plus the session's CSRF token."""

    principal: Principal
    csrf: str
    session_expires: dt.datetime


class SessionStore:
    def __init__(self, db: Database, *, lifetime: dt.timedelta) -> None:
        self.db = db
        self.lifetime = lifetime

    async def create(self, principal: Principal) -> tuple[str, WebUser]:
        """A new session for an authenticated token; returns the cookie value (shown once)."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + self.lifetime
        if principal.expires_at is not None:
            expires = min(expires, principal.expires_at)
        csrf = secrets.token_urlsafe(32)
        async with self.db.session() as s:
            # Housekeeping where it costs nothing: sign-ins are rare.
            await s.execute(delete(WebSession).where(WebSession.expires_at <= now))
            s.add(
                WebSession(
                    id_hash=_hash(session_id),
                    token_id=principal.token_id,
                    csrf=csrf,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return session_id, WebUser(principal, csrf, expires)

    async def load(self, session_id: str | None) -> WebUser | None:
        """The session's user, or None when the cookie is missing, unknown, expired, or its
        token is no longer valid."""
        if not session_id or len(session_id) > 100:
            return None
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(WebSession, Token, Account, Organization)
                    .join(Token, WebSession.token_id == Token.id)
                    .join(Account, Token.account_id == Account.id)
                    .join(Organization, Account.org_id == Organization.id)
                    .where(WebSession.id_hash == _hash(session_id))
                )
            ).first()
        if row is None:
            return None
        session, token, account, org = row
        if session.expires_at <= utcnow():
            return None
        principal = principal_of(token, account, org)
        if principal is None:
            return None
        return WebUser(principal, session.csrf, session.expires_at)

    async def end(self, session_id: str | None) -> None:
        if session_id:
            async with self.db.session() as s:
                await s.execute(delete(WebSession).where(WebSession.id_hash == _hash(session_id)))


def looks_like_token(value: str) -> bool:
    """Checked before any lookup, so a pasted typo gets a precise message."""
    return tokens.well_formed(value)
