"""Readers for single fields of a raw event: check, repair, or raise ``FieldError``.

Each reader takes the value exactly as ``json.loads`` produced it (so only
dict, list, str, int, float, bool and None occur) and returns the canonical
value. The repairs are deliberately few and lossless; anything ambiguous is
rejected. ``type(v) is int`` is used instead of isinstance because bool is an
int subclass and ``true`` is never a valid number here.
"""

from __future__ import annotations

import math
import re

from udfs.reasons import Reason
from udfs.text import clean_id, clean_label, is_printable_id, normalize_query

# JSON number syntax, for numbers sent as strings. Stricter than float(), which would
# also take " 12", "1_000", "nan" and "infinity". No sign: a negative numeric string
# is not a repair we want to make.
_DECIMAL_STRING = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER_STRING = re.compile(r"[0-9]{1,19}")
# Integer ids are accepted when they fit a signed 64-bit integer, like the JSON Schema says.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_PREVIEW_CHARS = 40


class FieldError(Exception):
    """A field breaks the contract. Raised only on bad records, so the happy path stays cheap."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def preview(value: object) -> str:
    """Short repr of a scalar for a human detail; never echoes a 64 KiB string."""
    text = repr(value)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for details."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    if type(value) is str:
        return "string"
    if type(value) is list:
        return "array"
    return "object"


def _wrong_type(path: str, expected: str, value: object) -> FieldError:
    shown = "" if type(value) is dict or type(value) is list else f" {preview(value)}"
    return FieldError(Reason.WRONG_TYPE, f"{path} must be {expected}, got {json_type(value)}{shown}")


def _integral_float_to_int(value: float, path: str) -> int:
    if not math.isfinite(value):  # reachable through overflow, e.g. 1e999
        raise FieldError(Reason.NOT_FINITE, f"{path} is not finite: {value!r}")
    if not value.is_integer():
        raise FieldError(Reason.WRONG_TYPE, f"{path} must be an integer, got {value!r}")
    return int(value)


def read_id(value: object, path: str, max_len: int, *, required: bool) -> str | None:
    """An id: a string (trimmed) or a 64-bit integer (written in decimal).

    Empty or whitespace-only counts as absent. Returns None for an absent optional id.
    """
    if type(value) is str:
        # Fast path, the common case: already clean (printable excludes all whitespace
        # but the ASCII space, so only a leading or trailing space could need trimming).
        if 0 < len(value) <= max_len and value.isprintable() and value[0] != " " and value[-1] != " ":
            return value
        if len(value) > max_len:
            raise FieldError(Reason.TOO_LONG, f"{path} is {len(value)} characters, limit {max_len}")
        text = clean_id(value)
        if text:
            if not is_printable_id(text):
                raise FieldError(Reason.BAD_CHARS, f"{path} contains non-printable characters: {preview(text)}")
            return text
        value = None
    elif type(value) is int or type(value) is float:
        number = value if type(value) is int else _integral_float_to_int(value, path)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise _wrong_type(path, "a string or a 64-bit integer", value)
        return str(number)
    elif value is not None:
        raise _wrong_type(path, "a string or an integer", value)
    if required:
        raise FieldError(Reason.MISSING_FIELD, f"{path} is required and is missing, null or empty")
    return None


def read_label(value: object, path: str, max_len: int) -> str | None:
    """A categorical label (category, brand, device, platform); integers are written in decimal.

    Always optional: absent, null or empty after cleaning gives None.
    """
    if type(value) is str:
        if len(value) > max_len:
            raise FieldError(Reason.TOO_LONG, f"{path} is {len(value)} characters, limit {max_len}")
        return clean_label(value) or None
    if type(value) is int or type(value) is float:
        number = value if type(value) is int else _integral_float_to_int(value, path)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise _wrong_type(path, "a string or a 64-bit integer", value)
        return str(number)
    if value is None:
        return None
    raise _wrong_type(path, "a string or an integer", value)


def read_query(value: object, path: str, max_len: int, *, required: bool) -> str | None:
    """Search text, normalised. May be empty after normalisation (e.g. a browse page)."""
    if type(value) is str:
        if len(value) > max_len:
            raise FieldError(Reason.TOO_LONG, f"{path} is {len(value)} characters, limit {max_len}")
        return normalize_query(value, max_len)
    if value is None:
        if required:
            raise FieldError(Reason.MISSING_FIELD, f"{path} is required and is missing or null")
        return None
    raise _wrong_type(path, "a string", value)


def read_number(value: object, path: str) -> float | None:
    """A finite number as float; a string in JSON number syntax is repaired. None when absent."""
    if type(value) is float:
        number = value
    elif type(value) is int:
        try:
            number = float(value)
        except OverflowError:  # an integer with hundreds of digits
            raise FieldError(Reason.NOT_FINITE, f"{path} overflows a double: {preview(value)}") from None
    elif type(value) is str:
        if _DECIMAL_STRING.fullmatch(value) is None:
            raise _wrong_type(path, "a number", value)
        number = float(value)
    elif value is None:
        return None
    else:
        raise _wrong_type(path, "a number", value)
    if not math.isfinite(number):
        raise FieldError(Reason.NOT_FINITE, f"{path} is not finite: {preview(value)}")
    return number


def read_price(value: object, path: str) -> float | None:
    price = read_number(value, path)
    if price is not None and price < 0:
        raise FieldError(Reason.NEGATIVE_PRICE, f"{path} is {price!r}, must be >= 0")
    return price


def read_quantity(value: object, path: str) -> float | None:
    quantity = read_number(value, path)
    if quantity is not None and quantity <= 0:
        raise FieldError(Reason.BAD_QUANTITY, f"{path} is {quantity!r}, must be > 0")
    return quantity


def read_integer(value: object, path: str) -> int:
    """An integer: JSON integer, integral float, or a string of decimal digits."""
    if type(value) is int:
        return value
    if type(value) is float:
        return _integral_float_to_int(value, path)
    if type(value) is str and _INTEGER_STRING.fullmatch(value) is not None:
        return int(value)
    raise _wrong_type(path, "an integer", value)
