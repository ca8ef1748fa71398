"""Sessions and forms: who is signed in, and proof that a form was sent from the console's own page.

A session is a token of `orderops.people` in an HTTP-only, SameSite=Strict cookie; every form carries
a CSRF token derived from it (before sign-in, from a cookie of its own), checked on every POST.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException, Request

from orderops.people import People, Person

SESSION_COOKIE = "orderops_session"
SIGNIN_COOKIE = "orderops_signin"


def csrf_token(seed: str) -> str:
    return hashlib.sha256(f"csrf:{seed}".encode()).hexdigest()[:32]


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE)


def signed_in(request: Request, people: People) -> Person | None:
    token = session_token(request)
    return people.holder(token) if token else None


def signin_seed(request: Request) -> str:
    """The seed of the sign-in form's CSRF token: its cookie's, or a new one the response must set."""
    return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)


def check_csrf(sent: str, seed: str | None) -> None:
    if not seed or not hmac.compare_digest(sent, csrf_token(seed)):
        raise HTTPException(403, "this form is stale or was not sent from the console; reload the page and try again")
