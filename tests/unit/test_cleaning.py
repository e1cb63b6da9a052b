"""Text cleaning rules: query normalisation, labels, ids."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.text import clean_id, clean_label, collapse_whitespace, is_printable_id, normalize_query, strip_invisibles

# Every code point, lone surrogates and control characters included.
any_text = st.text(st.characters(exclude_categories=()), max_size=80)
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs"}


@pytest.mark.parametrize("raw, expected", [
    ("Red Shoes", "red shoes"),
    ("  red\t\tshoes \n", "red shoes"),
    ("red\nshoes", "red shoes"),                      # whitespace controls separate words
    ("red\x00sh\x07oes\x7f", "redshoes"),             # other controls are removed
    ("ｉＰｈｏｎｅ　１５", "iphone 15"),              # NFKC: full-width letters, ideographic space
    ("ﬁlter", "filter"),                              # NFKC: ligature
    ("Straße", "strasse"),                            # case folding, not just lower()
    ("ΣΊΣΥΦΟΣ", "σίσυφοσ"),                           # final sigma folds too
    ("e\u0301", "é"),                                 # composed
    ("e\x00\u0301", "é"),                             # a stray control does not block composition
    ("zero\u200bwidth\ufeff", "zerowidth"),           # format characters removed
    ("a\u00a0b\u2003c", "a b c"),                     # Unicode spaces collapse
    ("连衣裙 夏季", "连衣裙 夏季"),                    # CJK untouched
    ("bad\ud800surrogate", "badsurrogate"),           # lone surrogates removed
    ("", ""),
    ("\t \u200b ", ""),
])
def test_normalize_query_rules(raw, expected):
    assert normalize_query(raw) == expected


def test_normalize_query_caps_length_after_expansion():
    expanded = normalize_query("\ufdfa" * 40)  # one Arabic ligature becomes 18 characters
    assert len(expanded) > 512
    capped = normalize_query("\ufdfa" * 40, 512)
    assert len(capped) <= 512 and capped == expanded[:512].rstrip()


@settings(max_examples=1000, deadline=None, database=None)
@given(any_text, st.sampled_from([None, 5, 512]))
def test_normalize_query_output_is_canonical_and_idempotent(raw, max_len):
    cleaned = normalize_query(raw, max_len)
    assert normalize_query(cleaned, max_len) == cleaned
    assert cleaned == cleaned.strip() and "  " not in cleaned
    assert all(ch == " " or not ch.isspace() for ch in cleaned)
    assert not any(unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in cleaned)
    # Case-folded in the NFKC sense (Unicode's NFKC_Casefold closure): folding can decompose a
    # composed letter ("ῆ" folds to "η" + U+0342), which the final NFKC composes again, so the
    # output is stable under fold-then-compose, not under a bare casefold().
    assert unicodedata.normalize("NFKC", cleaned.casefold()) == cleaned
    cleaned.encode("utf-8")  # never a lone surrogate
    if max_len is not None:
        assert len(cleaned) <= max_len


def test_query_folding_recomposes_what_casefold_decomposes():
    # Found by the property test above in a CI run: casefold("\u1fc6") is "\u03b7\u0342".
    assert normalize_query("\u1fc6") == "\u1fc6" == normalize_query("\u03b7\u0342")
    assert normalize_query("\u0397\u0342") == "\u1fc6"  # capital eta + perispomeni


@pytest.mark.parametrize("raw, expected", [
    ("Nike", "Nike"),                                 # case kept
    ("  Ｎｉｋｅ   Air ", "Nike Air"),
    ("Shoes\x00 & \u200bBoots", "Shoes & Boots"),
    ("\u3000", ""),
])
def test_clean_label_rules(raw, expected):
    assert clean_label(raw) == expected


@settings(max_examples=500, deadline=None, database=None)
@given(any_text)
def test_clean_label_is_idempotent_and_visible(raw):
    cleaned = clean_label(raw)
    assert clean_label(cleaned) == cleaned
    assert cleaned == collapse_whitespace(cleaned)
    assert not any(unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in cleaned)
    cleaned.encode("utf-8")


def test_ids_are_trimmed_but_otherwise_untouched():
    assert clean_id("  User-ABC\t") == "User-ABC"
    assert clean_id("ｕ1") == "ｕ1"  # no NFKC: ids are opaque keys
    assert clean_id("a  b") == "a  b"


@pytest.mark.parametrize("text, printable", [
    ("user-1", True), ("ü 🙂 字", True), ("a\x00", False), ("a\tb", False), ("a\u200bb", False),
    ("a\ud800", False), ("a\u00a0b", False), ("a\u2028b", False),
])
def test_printable_ids(text, printable):
    assert is_printable_id(text) is printable


def test_strip_invisibles_keeps_whitespace_for_word_breaks():
    assert strip_invisibles("a\tb\x00c\u200d") == "a\tbc"
