"""json_record (udfs/jvm/.../JsonRecord.java), which writes the training examples and the online
feature records: its text is strict JSON that reads back as exactly the names and values it was
given, in their order.

The function runs in a JVM on argument lists written to it by tests/jvm/.../JsonRecordRun.java.
"""
from __future__ import annotations

import base64
import json
import math
import random
import shutil
import struct
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (javac)")


def _encode(value) -> str:
    if value is None:
        return "n:"
    if isinstance(value, bool):
        return f"b:{str(value).lower()}"
    if isinstance(value, int):
        return f"{'i' if -2**31 <= value < 2**31 else 'l'}:{value}"
    if isinstance(value, float):
        return f"d:{struct.unpack('>Q', struct.pack('>d', value))[0]:x}"
    return "s:" + base64.b64encode(value.encode("utf-8")).decode()


@pytest.fixture(scope="module")
def json_record(jvm_classpath):
    """Argument lists -> json_record's text for each (or '!' and the error)."""
    def run(calls: list[list]) -> list[str]:
        lines = "".join("\t".join(map(_encode, args)) + "\n" for args in calls)
        proc = subprocess.run(["java", "-cp", jvm_classpath, "org.freshrank.udfs.JsonRecordRun"],
                              input=lines.encode(), capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode()
        answers = proc.stdout.decode("utf-8").split("\n")[:-1]  # not splitlines: U+2028 is not a line end here
        assert len(answers) == len(calls)
        return answers
    return run


def _strict(text: str) -> list[tuple[str, object]]:
    def no_constants(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, object_pairs_hook=list, parse_constant=no_constants)


def _same(got, want) -> bool:
    if isinstance(want, float) and not math.isfinite(want):
        return got is None
    if isinstance(want, float):  # the same double, sign of zero included
        return isinstance(got, float) and got == want and math.copysign(1, got) == math.copysign(1, want)
    return type(got) is type(want) and got == want


def test_an_example_reads_back_with_every_type(json_record):
    args = ["example_id", "e-1:3", "ts", 1_764_000_000_123, "position", 3, "price", 19.99,
            "u_click_5m", 0.0, "u_last_category", "", "query", "running shoes", "brand", None,
            "qi_ctr_24h", 1.0 / 21.0, "ok", True]
    [text] = json_record([args])
    assert _strict(text) == list(zip(args[::2], args[1::2]))
    assert text.startswith('{"example_id":"e-1:3","ts":1764000000123,') and " " not in text.replace("running shoes", "")


def test_strings_are_escaped_as_json_requires(json_record):
    nasty = ['"', "\\", "\\\"", "\n\r\t\b\f", "\x00\x01\x1f\x7f", "café ünïcödé", "日本語", "emoji 🛒",
             "\u2028\u2029", "</script>", "a\"b\\c\"d", "\ud7ff\ue000\uffff"]
    calls = [["name " + s, s] for s in nasty] + [[s, 1] for s in nasty]
    for args, text in zip(calls, json_record(calls)):
        assert _strict(text) == [(args[0], args[1])]
        assert not any(ord(c) < 0x20 for c in text)


def test_doubles_read_back_as_the_same_double_and_non_finite_as_null(json_record):
    doubles = [0.0, -0.0, 1.0, -1.5, 0.1, 1e-3, 9.999e-4, 1e7, 9999999.0, 1.7976931348623157e308,
               5e-324, 2.2250738585072014e-308, 123456789.123456789, 1e23, 2.0**53 + 2, -3.14e-100,
               math.nan, math.inf, -math.inf]
    calls = [["x", d] for d in doubles]
    for d, text in zip(doubles, json_record(calls)):
        [(name, got)] = _strict(text)
        assert _same(got, d), (d, text)


def test_whole_doubles_are_written_as_double_to_string_writes_them(json_record):
    # The counts take a shortcut past Java's digit generation; its text must stay the same
    # ("3.0"; below 1e7 in magnitude Python's repr agrees with Java's Double.toString).
    rng = random.Random(3)
    doubles = [0.0, -0.0, 1.0, -1.0, 7.0, 9999999.0, -9999999.0, 4503599627370496.0 / 2**30,
               *(float(rng.randrange(-10**7 + 1, 10**7)) for _ in range(200))]
    for d, text in zip(doubles, json_record([["x", d] for d in doubles])):
        assert text == '{"x":' + repr(d) + "}", (d, text)
    assert json_record([["x", 1e7]]) == ['{"x":1.0E7}']  # from 1e7 on, Java's exponent form


def test_random_records_read_back_exactly(json_record):
    rng = random.Random(7)
    alphabet = "abc \"\\\n\t\x01é日🛒/'{}[]:,"

    def text():
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))

    def value():
        kind = rng.randrange(6)
        return [None, rng.random() < 0.5, rng.randrange(-2**63, 2**63), rng.randrange(-1000, 1000),
                struct.unpack(">d", rng.randbytes(8))[0], text()][kind]

    calls = []
    for _ in range(3_000):
        names = list(dict.fromkeys(text() for _ in range(rng.randrange(0, 8))))
        calls.append([x for name in names for x in (name, value())])
    for args, text_out in zip(calls, json_record(calls)):
        pairs = _strict(text_out)
        assert [n for n, _ in pairs] == args[::2]
        assert all(_same(got, want) for (_, got), want in zip(pairs, args[1::2])), (args, text_out)


def test_an_odd_argument_count_is_an_error(json_record):
    assert json_record([["a", 1, "b"], []]) == ["!json_record takes name, value pairs: got 3 arguments", "{}"]
