"""Sign-in, sessions, roles.

Browsers get an HttpOnly, SameSite=Strict session cookie plus a CSRF token that must come back
in the ``X-CSRF-Token`` header on every state-changing request. API clients may instead send
``Authorization: Bearer <token>``; a bearer token is never sent ambiently, so it needs no CSRF
token. Only a SHA-256 of each token is stored. Repeated failures lock the account for a while.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from agent_ui.deps import ServicesDep, SessionDep
from cases.models import AuthSession, Role, User, utcnow
from cases.passwords import hash_password, verify_password

log = logging.getLogger(__name__)

SESSION_COOKIE = "hotline_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = dt.timedelta(hours=12)  # one shift plus overtime
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Who may see citizens' full phone numbers (they call back or identify callers).
ROLES_SEEING_PHONE_NUMBERS = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN})


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps unknown usernames as slow as wrong passwords."""
    return hash_password(secrets.token_hex(16))


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserPublic(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    department_id: int | None
    extension: str | None


class LoginResponse(BaseModel):
    user: UserPublic
    csrf_token: str
    token: str  # also set as the HttpOnly cookie; API clients use it as a bearer token


def user_public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        department_id=user.department_id,
        extension=user.extension,
    )


def authenticate(
    session: Session, username: str, password: str, *, max_failures: int, lockout_s: int
) -> User:
    """The user, or HTTPException 401 (bad credentials) / 429 (locked out)."""
    now = utcnow()
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        verify_password(_dummy_hash(), password)
        raise HTTPException(401, "wrong username or password")
    if user.locked_until and user.locked_until > now:
        raise HTTPException(429, "too many failed attempts; try again later")
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.locked_until = now + dt.timedelta(seconds=lockout_s)
            user.failed_logins = 0
            log.warning("user %s locked out after repeated failures", user.username)
        session.commit()
        raise HTTPException(401, "wrong username or password")
    user.failed_logins = 0
    user.locked_until = None
    return user


def open_session(session: Session, user: User) -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = utcnow()
    session.execute(delete(AuthSession).where(AuthSession.expires_at < now))
    session.add(
        AuthSession(
            token_hash=_hash_token(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
    )
    return token, csrf


def _session_from_request(request: Request, session: Session) -> tuple[AuthSession, bool]:
    """(auth session, came from cookie) or 401."""
    header = request.headers.get("authorization", "")
    from_cookie = False
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    else:
        token = request.cookies.get(SESSION_COOKIE, "")
        from_cookie = True
    if not token:
        raise HTTPException(401, "sign in first")
    auth = session.scalar(
        select(AuthSession).where(AuthSession.token_hash == _hash_token(token))
    )
    if auth is None or auth.expires_at <= utcnow() or not auth.user.is_active:
        raise HTTPException(401, "session expired; sign in again")
    return auth, from_cookie


def current_user(request: Request, session: SessionDep) -> User:
    auth, from_cookie = _session_from_request(request, session)
    if from_cookie and request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not secrets.compare_digest(sent, auth.csrf_token):
            raise HTTPException(403, "missing or wrong CSRF token")
    request.state.user = auth.user
    return auth.user


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, User]]:
    allowed = frozenset(roles)

    async def _check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise HTTPException(403, "your role may not do this")
        return user

    return _check


def may_see_phone_numbers(user: User) -> bool:
    return user.role in ROLES_SEEING_PHONE_NUMBERS


router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login")
def login(
    body: LoginRequest, response: Response, session: SessionDep, services: ServicesDep
) -> LoginResponse:
    sec = services.settings.security
    user = authenticate(
        session,
        body.username,
        body.password,
        max_failures=sec.login_max_failures,
        lockout_s=sec.login_lockout_s,
    )
    token, csrf = open_session(session, user)
    session.commit()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=services.settings.env == "production",
        path="/",
    )
    return LoginResponse(user=user_public(user), csrf_token=csrf, token=token)


@router.post("/logout", status_code=204)
def logout(request: Request, response: Response, session: SessionDep, _user: CurrentUser) -> None:
    auth, _ = _session_from_request(request, session)
    session.delete(auth)
    session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return user_public(user)
