"""User accounts."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Department, Role, User
from cases.passwords import hash_password
from cases.service import CaseInputError

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 10


def add_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str | None = None,
    department_code: str | None = None,
    extension: str | None = None,
) -> User:
    if not _USERNAME.match(username):
        raise CaseInputError(
            "username", "2-64 characters: lower-case letters, digits, '.', '_' or '-'"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CaseInputError("password", f"at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise CaseInputError("username", f"'{username}' already exists")
    department_id = None
    if department_code:
        department_id = session.scalar(
            select(Department.id).where(Department.code == department_code)
        )
        if department_id is None:
            raise CaseInputError("department", f"no department '{department_code}'")
    if role == Role.DEPARTMENT_STAFF and department_id is None:
        raise CaseInputError("department", "department staff must belong to a department")
    if extension is not None and not extension.isdigit():
        raise CaseInputError("extension", "digits only")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        department_id=department_id,
        extension=extension,
    )
    session.add(user)
    session.flush()
    return user
