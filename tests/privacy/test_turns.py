"""A number spelled over a caller's turns is found, and each turn keeps its own words."""

from __future__ import annotations

from voicehooks.privacy import Turn, find_turns, redact_turns


def test_a_card_over_two_turns_maps_back_to_each_turn() -> None:
    turns = [
        Turn("user", "my card is four one one one, one one one one"),
        Turn("assistant", "go on"),
        Turn("user", "one one one one, one one one one. thanks"),
    ]
    assert redact_turns(turns) == ["my card is [card]", "go on", "[card]. thanks"]


def test_turns_far_apart_in_time_are_read_alone() -> None:
    turns = [Turn("user", "four one one one one one one one", 0.0),
             Turn("user", "one one one one one one one one", 60.0)]  # fmt: skip
    assert find_turns(turns) == [[], []]
    close = [
        Turn("user", turn.text, seconds) for turn, seconds in zip(turns, (0.0, 4.0), strict=True)
    ]
    assert [len(found) for found in find_turns(close)] == [1, 1]


def test_without_times_two_other_turns_between_end_the_group() -> None:
    turns = [
        Turn("user", "four one one one one one one one"),
        Turn("assistant", "yes"),
        Turn("assistant", "and?"),
        Turn("user", "one one one one one one one one"),
    ]
    assert redact_turns(turns) == [turn.text for turn in turns]


def test_the_assistant_is_read_alone_and_other_caller_roles_can_be_named() -> None:
    turns = [Turn("customer", "oh six five five"), Turn("customer", "oh one eight three four two"),
             Turn("bot", "I have 0655018342")]  # fmt: skip
    assert redact_turns(turns, languages=["en", "nl"], caller_roles=["customer"]) == [
        "[phone]",
        "[phone]",
        "I have [phone]",
    ]
