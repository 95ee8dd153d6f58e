"""The memory of recognised keys: how long it holds a key, and that it stays small."""

from __future__ import annotations

from reelgate.keycache import RecognisedKeys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_recognised_for_its_seconds_then_forgotten() -> None:
    clock = Clock()
    keys = RecognisedKeys(10.0, clock=clock)
    assert "k" not in keys
    keys.add("k")
    assert "k" in keys and "other" not in keys
    clock.now += 9.9
    assert "k" in keys
    clock.now += 0.2
    assert "k" not in keys


def test_it_never_holds_more_than_its_capacity() -> None:
    keys = RecognisedKeys(10.0, capacity=3)
    for name in ("a", "b", "c"):
        keys.add(name)
    assert all(name in keys for name in ("a", "b", "c"))
    keys.add("d")  # full: it starts again with the newest
    assert "d" in keys and "a" not in keys
    assert len(keys._until) == 1


def test_keys_are_held_by_their_hash() -> None:
    keys = RecognisedKeys()
    keys.add("f5574cc257beb5a63ac3a7d07caada2d")
    assert "f5574cc257beb5a63ac3a7d07caada2d" not in keys._until
