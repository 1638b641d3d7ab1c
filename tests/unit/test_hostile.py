import json

from flinktrade.testing.hostile import ONE_MB, hostile_records


def test_hostile_variants_replace_one_field_and_keep_the_rest() -> None:
    valid = {"id": "t1", "symbol": "AAPL", "price": 101.5, "size": 10, "ts": 1_700_000_000_000}
    variants = dict(hostile_records(valid))
    assert json.loads(variants["price_negative"]) == {**valid, "price": -100000}
    assert json.loads(variants["missing_symbol"]) == {
        k: v for k, v in valid.items() if k != "symbol"
    }
    assert b'"price": NaN' in variants["price_nan"]
    assert b"\xff\xfeAB" in variants["symbol_not_utf8"]
    assert len(variants["one_mb"]) > ONE_MB
    assert variants["truncated"] == json.dumps(valid).encode()[: len(json.dumps(valid)) // 2]
    names = [name for name, _ in hostile_records(valid)]
    assert len(names) == len(set(names))
