"""Phone numbers as citizens give them: normalise to digits, validate, mask for display."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]")
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
# Fixed lines with area code (0 + 2-3 digit code + 7-8 digits) or a local 7-8 digit number.
_FIXED_LINE = re.compile(r"^(0\d{2,3}\d{7,8}|\d{7,8})$")
_SERVICE = re.compile(r"^\d{3,6}$")  # 110, 12345, 95598 ...


class InvalidPhone(ValueError):
    pass


def normalise_phone(raw: str, *, allow_short: bool = False) -> str:
    """Digits only, without +86/0086, or InvalidPhone with a reason.

    Short service numbers (110, 12345, 95598) are valid only where asked for (dialled
    numbers); a citizen's own number is a mobile or a fixed line."""
    if raw is None:
        raise InvalidPhone("phone number is empty")
    s = _SEPARATORS.sub("", raw.strip())
    if not s:
        raise InvalidPhone("phone number is empty")
    if s.startswith("+86"):
        s = s[3:]
    elif s.startswith("0086"):
        s = s[4:]
    if not s.isdigit() or not s.isascii():
        raise InvalidPhone("phone number must contain digits only")
    if len(s) > 20:
        raise InvalidPhone("phone number is too long")
    if not (_MAINLAND_MOBILE.match(s) or _FIXED_LINE.match(s)
            or (allow_short and _SERVICE.match(s))):
        raise InvalidPhone(f"'{s}' is not a valid mainland mobile or fixed-line number")
    return s


def try_normalise_phone(raw: str | None) -> str | None:
    """For caller IDs: None when the number is absent, anonymous or malformed."""
    if not raw:
        return None
    try:
        return normalise_phone(raw)
    except InvalidPhone:
        return None


def mask_phone(number: str | None) -> str:
    """138****5678 for mobiles; keep the first 3 and last 4 digits of anything long enough."""
    if not number:
        return ""
    if len(number) >= 8:
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    return "*" * len(number)
