"""Console accounts: argon2 password hashes, and the lockout after repeated failures per account and per client
(an IPv4 address, an IPv6 /64: people/networks)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_login import UserMixin
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..models import AdminUser, ConsoleSession, LoginAttempt, utcnow
from ..people.networks import client_of

MAX_FAILURES = 10
WINDOW = timedelta(minutes=15)
MIN_PASSWORD = 12
_hasher = PasswordHasher()
# Verified when the account does not exist, so a wrong address takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class LockedOut(Exception):
    """Too many failed logins for this account or from this address lately."""


class WeakPassword(ValueError):
    """A new password the console refuses; the message says why."""


class ConsoleUser(UserMixin):
    """The logged-in admin as Flask-Login sees it, in one console session (its key is in the cookie).

    The id changes with the password, ending every session; logging out deletes the session's row, ending it.
    """

    def __init__(self, admin: AdminUser, key: str):
        self.admin, self.key = admin, key

    def get_id(self) -> str:
        return f"{self.admin.id}:{session_mark(self.admin)}:{self.key}"


def session_mark(admin: AdminUser) -> str:
    return hashlib.sha256(admin.password_hash.encode()).hexdigest()[:16]


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start_session(session: Session, admin: AdminUser) -> ConsoleUser:
    """A new console session for this admin, stored on the server so that logging out can end it."""
    key = secrets.token_urlsafe(32)
    session.add(ConsoleSession(key_hash=_key_hash(key), admin_id=admin.id))
    return ConsoleUser(admin, key)


def end_session(session: Session, user: ConsoleUser) -> None:
    """Log out: the session's cookie, and every copy of it, opens nothing any more."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.key_hash == _key_hash(user.key)))


def end_other_sessions(session: Session, user: ConsoleUser) -> None:
    """Forget the admin's other sessions (a new password has ended them already)."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.admin_id == user.admin.id,
                                                 ConsoleSession.key_hash != _key_hash(user.key)))


def load_user(session: Session, user_id: str) -> ConsoleUser | None:
    """The user behind a session cookie, unless the password changed since it was issued or it logged out."""
    admin_id, mark, key = (user_id.split(":") + ["", ""])[:3]
    if not admin_id.isdigit() or not key:
        return None
    admin = session.scalar(select(AdminUser).join(ConsoleSession, ConsoleSession.admin_id == AdminUser.id).where(
        AdminUser.id == int(admin_id), ConsoleSession.key_hash == _key_hash(key)))
    return ConsoleUser(admin, key) if admin and mark == session_mark(admin) else None


def check_password_rules(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"The password must be at least {MIN_PASSWORD} characters long.")
    if len(password) > 1024:
        raise WeakPassword("The password must be at most 1024 characters long.")
    return password


def set_admin(session: Session, email: str, password: str) -> bool:
    """Create the account, or give an existing one this password; True when it was created."""
    email = email.strip().lower()
    admin = session.scalar(select(AdminUser).where(AdminUser.email == email))
    digest = _hasher.hash(check_password_rules(password))
    if admin is None:
        session.add(AdminUser(email=email, password_hash=digest))
        return True
    admin.password_hash = digest
    return False


def locked_out(session: Session, email: str, ip: str | None) -> bool:
    """MAX_FAILURES failed tries within WINDOW for this account, or from this client (every address of one IPv6
    /64 is one client: whoever has one has them all)."""
    since = utcnow() - WINDOW
    failures = select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.at > since, LoginAttempt.succeeded.is_(False))
    by_account = session.scalar(failures.where(LoginAttempt.email == email))
    by_client = session.scalar(failures.where(LoginAttempt.network == client_of(ip))) if ip else 0
    return by_account >= MAX_FAILURES or by_client >= MAX_FAILURES


def unlock(session: Session) -> int:
    """Forget the failed sign-ins that count toward a lockout (those of the last WINDOW); how many there were."""
    return session.execute(delete(LoginAttempt).where(LoginAttempt.succeeded.is_(False),
                                                      LoginAttempt.at > utcnow() - WINDOW)).rowcount


def authenticate(session: Session, email: str, password: str, ip: str | None) -> AdminUser | None:
    """The account if the password is right; LockedOut before even checking once the limit is reached."""
    email = email.strip().lower()[:254]
    if locked_out(session, email, ip):
        # Keeps the lock while attempts go on.
        session.add(LoginAttempt(email=email, ip=ip, network=client_of(ip), succeeded=False))
        raise LockedOut(email)
    admin = session.scalar(select(AdminUser).where(AdminUser.email == email))
    ok = _verify(admin.password_hash if admin else _DUMMY_HASH, password) and admin is not None
    session.add(LoginAttempt(email=email, ip=ip, network=client_of(ip), succeeded=ok))
    if not ok:
        return None
    admin.last_login_at = utcnow()
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = _hasher.hash(password)
    return admin


def change_password(admin: AdminUser, current: str, new: str) -> bool:
    """False when `current` is wrong; WeakPassword when `new` breaks the rules."""
    if not _verify(admin.password_hash, current):
        return False
    admin.password_hash = _hasher.hash(check_password_rules(new))
    return True


def _verify(digest: str, password: str) -> bool:
    try:
        return _hasher.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


def prune_attempts(session: Session) -> None:
    """Forget attempts older than a day: the lockout looks back only WINDOW."""
    session.execute(LoginAttempt.__table__.delete().where(LoginAttempt.at < utcnow() - timedelta(days=1)))
