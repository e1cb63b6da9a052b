"""Text cleaning shared by validation, features and serving.

Serving must clean a live query exactly as training did, so it imports these
functions instead of re-implementing them. Every cleaner is idempotent:
``f(f(s)) == f(s)``, so a cleaned event re-validates to itself.
"""

from __future__ import annotations

import sys
import unicodedata
from functools import lru_cache

# ASCII control characters that are not whitespace. Whitespace controls (\t \n \v \f \r
# and \x1c-\x1f, which str.split() treats as separators) become word breaks instead,
# so "red\nshoes" stays two words.
_ASCII_CONTROLS = {code: None for code in (*range(0x00, 0x09), *range(0x0E, 0x1C), 0x7F)}


@lru_cache(maxsize=1)
def _unicode_invisibles() -> dict[int, None]:
    """Deletion table for every non-whitespace control (Cc), format (Cf) and lone surrogate (Cs).

    Built on first use (~0.2 s) rather than at import: pure-ASCII text never needs it.
    Stripping surrogates also guarantees the result can be encoded as UTF-8 downstream.
    """
    table = {}
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) in ("Cc", "Cf", "Cs") and not char.isspace():
            table[code] = None
    return table


def strip_invisibles(text: str) -> str:
    """Remove control, format and surrogate characters; keep whitespace characters."""
    if text.isascii():
        return text.translate(_ASCII_CONTROLS)
    return text.translate(_unicode_invisibles())


def collapse_whitespace(text: str) -> str:
    """Turn every run of Unicode whitespace into one space and trim both ends."""
    return " ".join(text.split())


def normalize_query(text: str, max_len: int | None = None) -> str:
    """Canonical search text: NFKC, case-folded, invisibles stripped, whitespace collapsed.

    ``max_len`` caps the result, since NFKC may expand a string (one ligature can
    become 18 characters); the cut is trimmed again so no trailing space remains.
    """
    cleaned = _normalized_query(text)
    if max_len is not None and len(cleaned) > max_len:
        cleaned = cleaned[:max_len].rstrip()
    return cleaned


# Queries and labels repeat heavily in a click stream, so a hit (one C-level dict
# lookup) replaces several passes over the text. Bounded: at most 16k entries each.
@lru_cache(maxsize=16_384)
def _normalized_query(text: str) -> str:
    """Invisibles go first so that a stray control character cannot keep a base letter
    and its combining mark apart during composition. Case folding (not lower()) maps
    "Straße" to "strasse" for caseless matching; NFKC runs again because folding can
    produce uncomposed sequences."""
    if text.isascii():
        # NFKC and casefold are the identity / lower() on ASCII: skip the Unicode tables.
        return collapse_whitespace(text.translate(_ASCII_CONTROLS).lower())
    cleaned = strip_invisibles(text)
    cleaned = unicodedata.normalize("NFKC", cleaned).casefold()
    return collapse_whitespace(unicodedata.normalize("NFKC", cleaned))


@lru_cache(maxsize=16_384)
def clean_label(text: str) -> str:
    """Canonical categorical label (category, brand, device, platform).

    NFKC (full-width "Ｎｉｋｅ" becomes "Nike"), invisibles stripped, whitespace
    collapsed; case is kept, because labels must match the catalogue as written.
    """
    if text.isascii():
        return collapse_whitespace(text.translate(_ASCII_CONTROLS))
    return collapse_whitespace(unicodedata.normalize("NFKC", strip_invisibles(text)))


def clean_id(text: str) -> str:
    """Canonical id: surrounding whitespace trimmed, nothing else touched.

    Ids are opaque keys: rewriting their inside could merge two different users,
    so an id with invisible characters is rejected (see ``is_printable_id``),
    never repaired.
    """
    return text.strip()


def is_printable_id(text: str) -> bool:
    """True when every character is printable (Python's definition: no control,
    format, surrogate, private-use, unassigned or separator character other than
    the ASCII space)."""
    return text.isprintable()
