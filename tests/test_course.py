"""rtkit.course: quick mode, checks of claims, and feedback on answers that names the mistake."""

from __future__ import annotations

import doctest

import pytest

import rtkit.course
from rtkit.course import check, check_answer, pick


def test_an_unanswered_exercise_shows_nothing_measured(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_answer(None, 1468, name="bytes", unit="B", reveal="request 1,049 B + answer 419 B") is None
    out = capsys.readouterr().out
    assert "not answered yet" in out
    assert "1468" not in out and "1,049" not in out  # neither the answer nor the explanation


def test_a_right_answer_is_confirmed_with_the_measured_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_answer(1450, 1468, rel=0.05, name="bytes", unit="B", reveal="request + answer") is True
    out = capsys.readouterr().out
    assert "right" in out and "measured: 1468 B" in out and "request + answer" in out


def test_a_known_mistake_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    mistakes = {419: "you counted the response bytes but not the request's",
                (lambda a: a > 10_000): "that is bits, not bytes"}
    assert check_answer(420, 1468, rel=0.05, mistakes=mistakes, name="b", unit="B") is False
    assert "but not the request's" in capsys.readouterr().out  # the same tolerance as expected
    assert check_answer(11_744, 1468, rel=0.05, mistakes=mistakes, name="b") is False
    assert "bits, not bytes" in capsys.readouterr().out
    assert check_answer(2000, 1468, rel=0.05, mistakes=mistakes, name="b", hint="Count once.") is False
    out = capsys.readouterr().out
    assert "too high" in out and "Count once." in out and "1468" not in out  # not given away


def test_pairs_predicates_and_non_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_answer("ws", lambda a: a in ("ws", "websocket"), name="which") is True
    assert check_answer("sse", "ws", mistakes=[("sse", "SSE only goes one way")], name="which") is False
    assert "one way" in capsys.readouterr().out
    assert check_answer(float("nan"), 1.0) is False
    assert "not a finite number" in capsys.readouterr().out


def test_check_raises_with_the_hint_and_pick_follows_quick_mode() -> None:
    check(True, "holds")
    with pytest.raises(AssertionError, match="not so: claim .* look again"):
        check(False, "claim", hint="look again")
    assert pick(10, 1) == (1 if rtkit.course.QUICK else 10)


def test_the_module_examples_hold() -> None:
    failures, _ = doctest.testmod(rtkit.course, optionflags=doctest.ELLIPSIS)
    assert failures == 0
