"""The validator's JVM fast path (udfs/jvm/.../VouchEvent.java, vouch_event in the job's SQL)
against the Python validator: it may only accept, and only what the exact path accepts, with the
same clean-topic record and event time.

The function runs in a JVM on records written to it by tests/jvm/.../VouchEventRun.java; its
answers are compared with udfs.validation (both Python fast paths off) and udfs.clean_record.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import random
import shutil
import subprocess
import time
from functools import partial

import pytest

import udfs.validation as validation
from freshrank.datagen import EventGenerator, GeneratorConfig
from freshrank.jvm_udfs import VOUCH_EVENT_LIMITS
from tests.unit import sample_events
from tests.unit.exact_path import exact_path_only
from tests.unit.sample_events import encode
from udfs.clean_record import to_clean_record
from udfs.config import DEFAULT_CONFIG

pytestmark = pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (javac)")

# vouch_event reads the wall clock (the future-skew check): events are placed around it.
NOW = int(time.time() * 1000)
WATERMARK = NOW - 60_000


@pytest.fixture(scope="module")
def jvm_vouch(jvm_classpath):
    """Records (and their watermarks) -> vouch_event's answers: (event_time, record) or None."""
    def run(records: list[bytes], watermarks: list[int | None] | None = None, config=DEFAULT_CONFIG):
        watermarks = watermarks or [WATERMARK] * len(records)
        lines = "".join(f"{base64.b64encode(raw).decode()}\t{'' if wm is None else wm}\n"
                        for raw, wm in zip(records, watermarks))
        proc = subprocess.run(["java", "-cp", jvm_classpath, "org.freshrank.udfs.VouchEventRun",
                               *(str(getattr(config, name)) for name in VOUCH_EVENT_LIMITS)],
                              input=lines, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        answers = []
        for line in proc.stdout.splitlines():
            event_time, _, record = line.partition("\t")
            answers.append(None if line == "-" else (int(event_time), record))
        assert len(answers) == len(records)
        return answers
    return run


def exact_record(raw: bytes, watermark: int | None, config=DEFAULT_CONFIG) -> tuple[int, str] | None:
    """The Python validator's (event_time, clean-topic record), both fast paths off; None if rejected."""
    with exact_path_only():
        verdict = validation.validate_columnar(raw, now_ms=int(time.time() * 1000), watermark_ms=watermark,
                                               config=config)
    if not verdict.ok:
        return None
    ts = verdict.event["ts"]
    event_time = ts if watermark is None or ts >= watermark else watermark
    return event_time, to_clean_record(verdict.event, event_time)


def assert_vouched_only_as_python_accepts(records, answers, watermarks=None, config=DEFAULT_CONFIG) -> int:
    """Every vouched record: accepted by Python with the same record (same keys in the same order,
    same values) and event time. Returns how many were vouched for."""
    watermarks = watermarks or [WATERMARK] * len(records)
    vouched = 0
    for raw, watermark, answer in zip(records, watermarks, answers):
        if answer is None:
            continue
        vouched += 1
        expected = exact_record(raw, watermark, config)
        assert expected is not None, (raw, answer)
        assert answer[0] == expected[0], raw
        jvm, python = json.loads(answer[1]), json.loads(expected[1])
        assert jvm == python and list(jvm) == list(python), (raw, answer[1], expected[1])
    return vouched


impression = partial(sample_events.impression, NOW)
click = partial(sample_events.click, NOW)


def test_clean_events_of_every_type_get_the_python_validators_record(jvm_vouch):
    labelled = impression(query=" Red  Shoes ", items=[
        {"item_id": "i-1", "position": 1, "price": 10.5, "category": "Shoes & Bags", "brand": "acme"},
        {"item_id": "i-2", "position": 7, "price": 3, "category": "shoes", "brand": None}])
    records = [encode(labelled), encode(impression()), encode(click()), encode(click(type="add_to_cart", quantity=2)),
               encode(click(type="purchase", quantity=1.5, request_id="r-1", session_id="s-9")),
               encode({"event_id": "e-3", "type": "search", "ts": NOW, "user_id": "u-2", "request_id": "r-2",
                       "query": ""}),
               json.dumps(click(), separators=(",", ":")).encode(),  # compact
               json.dumps(impression(), indent=2).encode() + b"\r\n"]  # pretty, with trailing whitespace
    answers = jvm_vouch(records)
    assert assert_vouched_only_as_python_accepts(records, answers) == len(records)
    record = json.loads(answers[0][1])
    assert record["query"] == "red shoes" and record["items"]["price"] == [10.5, 3.0]
    assert record["items"]["brand"] == ["acme", None] and record["event_time"] == NOW - 1_000


def test_an_event_behind_the_watermark_enters_event_time_at_the_watermark(jvm_vouch):
    records = [encode(click(ts=WATERMARK - 5_000)), encode(click(ts=WATERMARK + 5))]
    answers = jvm_vouch(records + records, [WATERMARK, WATERMARK, None, None])
    assert [event_time for event_time, _ in answers] == [WATERMARK, WATERMARK + 5, WATERMARK - 5_000, WATERMARK + 5]
    assert assert_vouched_only_as_python_accepts(records + records, answers, [WATERMARK, WATERMARK, None, None]) == 4


DECLINED = [
    # repairs the Python validator makes
    encode(click(user_id=" u-1")), encode(click(user_id=42)), encode(click(price="10.5")),
    encode(click(request_id="")), encode(click(category="  Shoes ")), encode(click(category="a  b")),
    encode(click(category="")), encode(click(category=7)),
    encode(impression(items=[{"item_id": "i-1", "price": 1.0}])),  # position imputed
    encode(impression(items=[{"item_id": "i-1", "position": 1, "price": None}])),
    encode(click(ts=NOW - 1_000.0)), encode(impression(items=[{"item_id": "i", "position": 1.0, "price": 1}])),
    # valid, but outside what the JVM reads: non-ASCII, escapes, an inner space in an id, repeated keys
    encode(click(user_id="u\u00e9")), json.dumps(click(user_id="u\u00e9"), ensure_ascii=False).encode(),
    encode(click(category='say "hi"')), encode(impression(query="red\tshoes")), encode(click(user_id="a b")),
    b'{"event_id":"e","type":"search","type":"click","ts":%d,"user_id":"u","item_id":"i"}' % (NOW - 1),
    encode(click(items=[{"item_id": "i-1", "position": 1, "price": 1.0}])),  # items on a click
    # rejected by the Python validator
    encode(click(ts=NOW + 3_600_000)), encode(click(ts=WATERMARK - DEFAULT_CONFIG.allowed_lateness_ms - 1)),
    encode(click(ts=123)), encode(click(price=-1)), encode(click(price=-0.5)), encode(click(quantity=0)),
    encode(click(type="wishlist_add")), encode(impression(items=[])), encode(impression(items=None)),
    encode(impression(query=None)), encode(impression(request_id=None)), encode(click(item_id=None)),
    encode(impression(items=[{"item_id": "i-1", "position": 1, "price": 1.0}] * 2)),  # repeated position
    encode(impression(items=[{"item_id": "i-1", "position": 0, "price": 1.0}])),
    encode(click(ts=True)), encode(click(ts="1699999999000")), encode({k: v for k, v in click().items() if k != "ts"}),
    b'{"event_id":"e","type":"click","ts":%d,"user_id":"u","item_id":"i","price":NaN}' % (NOW - 1),
    b'{"event_id":"e","type":"click","ts":%d,"user_id":"u","item_id":"i","price":1e400}' % (NOW - 1),
    b'{"event_id":"e","type":"click","ts":%d,"user_id":"u","item_id":"i","price":01}' % (NOW - 1),
    b'{"event_id":"e","type":"click","ts":0%d,"user_id":"u","item_id":"i"}' % (NOW - 1),
    b'{"event_id":"e","type":"click","ts":%d,"user_id":"u","item_id":"i","price":1.}' % (NOW - 1),
    b'{"event_id":"e","type":"click","ts":%d,"user_id":"u","item_id":"i","price":-}' % (NOW - 1),
    b"\xef\xbb\xbf" + encode(click()), encode(click())[:-1], encode(click()) + b"{}", encode(click()) + b",",
    encode(click(extra={"deep": [[[[1]]]]})), encode([click()]), b"", b"null", b"{}",
    encode(click(user_id="x" * (DEFAULT_CONFIG.max_id_len + 1))),
    encode(impression(items=[{"item_id": f"i-{k}", "position": k + 1, "price": 1.0}
                             for k in range(DEFAULT_CONFIG.max_items + 1)])),
]


def test_what_needs_a_repair_a_verdict_or_unicode_goes_to_the_python_validator(jvm_vouch):
    assert jvm_vouch(DECLINED) == [None] * len(DECLINED)


def test_numbers_are_read_as_python_reads_them(jvm_vouch):
    prices = ["0", "12", "-0.0", "0.1", "10.25", "1e-7", "2.5E300", "123456789012345678901234567890",
              "0.30000000000000004", "9007199254740993", "1.7976931348623157e308", "4.9e-324", "123456.789012345678"]
    records = [encode(click()).replace(b'"price": 10.5', b'"price": ' + price.encode()) for price in prices]
    answers = jvm_vouch(records)
    assert None not in answers
    assert assert_vouched_only_as_python_accepts(records, answers) == len(records)


def test_the_limits_come_from_the_config(jvm_vouch):
    tight = dataclasses.replace(DEFAULT_CONFIG, max_id_len=3, max_items=1, max_position=1, max_query_len=4,
                                max_string_len=4, max_record_bytes=400)
    single = [{"item_id": "i-1", "position": 1, "price": 1.0}]
    fits = encode(impression(items=single, query="abcd", session_id=None, device="ios", platform="app"))
    records = [fits, encode(click(user_id="u-12")), encode(impression(items=single * 2)),
               encode(impression(items=single, query="abcde", session_id=None)),
               encode(impression(items=[{"item_id": "i-1", "position": 2, "price": 1.0}], query="ab")),
               encode(click(category="shoes")), fits + b" " * 400]
    answers = jvm_vouch(records, config=tight)
    assert answers[0] is not None and answers[1:] == [None] * (len(records) - 1)
    assert assert_vouched_only_as_python_accepts(records, answers, config=tight) == 1


def _mutations(raw: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Small edits of a record: a byte flipped, deleted, duplicated, or a JSON-ish byte inserted."""
    out = []
    for _ in range(count):
        data = bytearray(raw)
        at = rng.randrange(len(data))
        edit = rng.randrange(4)
        if edit == 0:
            data[at] = rng.randrange(256)
        elif edit == 1:
            del data[at]
        elif edit == 2:
            data.insert(at, data[at])
        else:
            data.insert(at, rng.choice(b' "\\{}[],:-.0123456789eEnul\x00\x7f\xc3'))
        out.append(bytes(data))
    return out


def test_on_a_generated_stream_and_its_mutations_it_vouches_only_as_python_accepts(jvm_vouch):
    generator = EventGenerator(GeneratorConfig(seed=17, malformed_share=0.05, start_ms=NOW - 1_800_000))
    stream = [value for _, value in generator.events(4_000)]
    rng = random.Random(5)
    mutated = [m for raw in rng.sample([raw for raw in stream if raw], 1_500) for m in _mutations(raw, rng, 5)]
    records = stream + mutated
    watermarks = [rng.choice((None, WATERMARK, NOW - 1_200_000)) for _ in records]
    answers = jvm_vouch(records, watermarks)
    assert assert_vouched_only_as_python_accepts(records, answers, watermarks) > 3_000
    # It takes nearly every valid record of the stream itself (the generator writes ASCII).
    valid = [i for i, raw in enumerate(stream) if exact_record(raw, watermarks[i]) is not None]
    vouched = [i for i in valid if answers[i] is not None]
    assert len(valid) > 3_000 and len(vouched) >= 0.9 * len(valid), (len(vouched), len(valid))


def _random_text(rng: random.Random, alphabet: str, longest: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(longest + 1)))


def _random_number(rng: random.Random) -> str:
    """JSON number texts of every shape: integers, fractions, exponents, long mantissas, -0."""
    sign = "-" if rng.random() < 0.1 else ""
    whole = rng.choice(["0", str(rng.randrange(1, 10 ** rng.randrange(1, 25)))])
    fraction = rng.choice(["", "." + str(rng.randrange(10 ** rng.randrange(1, 20))).zfill(rng.randrange(1, 4))])
    exponent = "" if rng.random() < 0.7 else f"{rng.choice('eE')}{rng.choice(['', '+', '-'])}{rng.randrange(330)}"
    return sign + whole + fraction + exponent


def _random_event(rng: random.Random) -> bytes:
    """A near-valid event: each field clean most of the time, else a value on the other side of a
    rule (cases, spaces, lengths, number forms, nulls, absences), written with random whitespace."""
    printable = "".join(map(chr, range(0x20, 0x7F))).replace('"', "").replace("\\", "")
    words = "aB zZ-09_./&' "

    def pick(clean, edge, edge_share=0.08):
        return json.dumps(edge() if rng.random() < edge_share else clean())

    event_type = rng.choice(["search", "impression", "click", "add_to_cart", "purchase", "impression", "Click"])
    fields: dict[str, str] = {
        "event_id": pick(lambda: f"e-{rng.randrange(10 ** 6)}", lambda: _random_text(rng, printable, 10)),
        "type": json.dumps(event_type),
        "ts": rng.choice([str(NOW - rng.randrange(5_000_000))] * 12 + [
            str(NOW + rng.randrange(600_000)), f"{NOW - 1_000}.0", str(rng.randrange(10 ** 12))]),
        "user_id": pick(lambda: f"u-{rng.randrange(1000)}", lambda: _random_text(rng, "uU-1 ", 6)),
    }
    optional = {
        "session_id": lambda: pick(lambda: f"s-{rng.randrange(99)}", lambda: _random_text(rng, "s- ", 3)),
        "request_id": lambda: pick(lambda: f"r-{rng.randrange(99)}", lambda: _random_text(rng, "r- ", 3)),
        "query": lambda: json.dumps(_random_text(rng, words, 12)),  # any of these is normalised
        "item_id": lambda: pick(lambda: f"i-{rng.randrange(99)}", lambda: _random_text(rng, "i- ", 3)),
        "price": lambda: _random_number(rng),
        "quantity": lambda: _random_number(rng),
        "category": lambda: pick(lambda: rng.choice(["shoes", "Home & Garden", "a.b"]),
                                 lambda: _random_text(rng, words, 8), 0.15),
        "brand": lambda: pick(lambda: rng.choice(["Acme", "acme co"]), lambda: _random_text(rng, "Acme ", 6)),
        "device": lambda: json.dumps(rng.choice(["ios", "android", "web"] * 5 + [" web", "Web  x", ""])),
        "platform": lambda: json.dumps(rng.choice(["app", "site"])),
    }
    for key, value in optional.items():
        roll = rng.random()
        if roll < 0.7:
            fields[key] = value()
        elif roll < 0.8:
            fields[key] = "null"
    if event_type == "impression" or rng.random() < 0.05:
        items = []
        for k in range(rng.randrange(0 if rng.random() < 0.05 else 1, 6)):
            item = {"item_id": pick(lambda: f"i-{rng.randrange(99)}", lambda: _random_text(rng, "i- ", 3), 0.03),
                    "position": rng.choice([str(k + 1)] * 12 + [str(rng.randrange(0, 4)), f"{k + 1}.0"]),
                    "price": _random_number(rng) if rng.random() < 0.3 else str(rng.randrange(100) / 4)}
            for label in ("category", "brand"):
                if rng.random() < 0.7:
                    item[label] = pick(lambda: rng.choice(["shoes", "Acme"]), lambda: _random_text(rng, words, 6), 0.05)
            items.append("{" + ",".join(f'"{key}":{value}' for key, value in item.items()) + "}")
        fields["items"] = "[" + ",".join(items) + "]"
    pairs = list(fields.items())
    rng.shuffle(pairs)
    space = lambda: rng.choice(["", "", " ", "\n  "])  # noqa: E731
    return ("{" + space() + ("," + space()).join(f'"{key}"{space()}:{space()}{value}' for key, value in pairs)
            + space() + "}").encode()


def test_on_random_near_valid_events_it_vouches_only_as_python_accepts(jvm_vouch):
    rng = random.Random(23)
    records = [_random_event(rng) for _ in range(6_000)]
    watermarks = [rng.choice((None, WATERMARK)) for _ in records]
    answers = jvm_vouch(records, watermarks)
    vouched = assert_vouched_only_as_python_accepts(records, answers, watermarks)
    # Both sides of the rules are drawn: a fair share is vouched for, a fair share is not.
    assert 600 < vouched < 5_000, vouched
