"""What the course notebooks share: quick mode, checking a claim, checking an answer.

Quick mode (``RTKIT_QUICK=1`` in the environment, as the test suite sets it)
shortens every experiment in the notebooks so the whole course runs in
seconds; the claims checked in the notebooks hold in both modes.

- :func:`check` states a measured fact and raises when it does not hold, so an
  automated run of a notebook fails on a regression;
- :func:`check_answer` gives feedback on a "Try it" exercise and only prints,
  so Run All still reaches the clean-up cell with a wrong or missing answer.
  It shows nothing measured before an answer is given, names the likely
  mistake (``mistakes=``) and explains the measured answer afterwards
  (``reveal=``).

>>> my_answer = None                     # the reader fills this in
>>> check_answer(my_answer, 150, rel=0.2, name="my_answer", unit="ms")
… my_answer: not answered yet. Set it in the cell above, then run this cell again.
>>> check_answer(419, 1468, rel=0.05, name="bytes", unit="B",
...              mistakes={419: "you counted the response bytes but not the request's"},
...              reveal="a poll is a request (1,049 B) and its answer (419 B)")
✘ bytes = 419 B: you counted the response bytes but not the request's
  a poll is a request (1,049 B) and its answer (419 B)
False
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["QUICK", "Mistakes", "check", "check_answer", "pick"]

#: True when the notebooks should run their short variants.
QUICK = os.environ.get("RTKIT_QUICK", "").strip().lower() in ("1", "true", "yes", "on")


def pick(full: float, quick: float) -> float:
    """``quick`` in quick mode, else ``full`` (durations, rates, counts)."""
    return quick if QUICK else full


def check(condition: bool, what: str, *, hint: str = "") -> None:
    """Tell the reader whether a measured fact or an exercise answer holds.

    Prints a tick when it does; raises ``AssertionError`` (so an automated run
    of the notebook fails) with ``what`` and the hint when it does not.
    """
    if condition:
        print(f"\u2714 {what}")
        return
    raise AssertionError(f"\u2718 not so: {what}" + (f" \u2014 {hint}" if hint else ""))


#: What ``mistakes=`` takes: ``{value_or_predicate: "what that answer suggests"}``, or
#: the same as ``(value_or_predicate, message)`` pairs (for values that cannot be dict keys).
Mistakes = Mapping[Any, str] | Sequence[tuple[Any, str]]


def _matches(answer: Any, target: Any, rel: float, abs_tol: float) -> bool:
    """``answer`` is ``target`` (numbers within the tolerance), or ``target(answer)``
    is true when ``target`` is a predicate."""
    if callable(target):
        return bool(target(answer))
    if _is_number(answer) and _is_number(target):
        return abs(answer - target) <= max(rel * abs(target), abs_tol)
    return bool(answer == target)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_answer(
    answer: Any,
    expected: Any,
    *,
    rel: float = 0.0,
    abs_tol: float = 0.0,
    name: str = "answer",
    unit: str = "",
    mistakes: Mistakes | None = None,
    reveal: str | None = None,
    hint: str = "",
) -> bool | None:
    """Feedback on a "Try it" answer; returns True (right), False (wrong) or None
    (not answered yet). Only prints, so Run All goes on with any answer.

    ``expected`` is the measured answer, or a predicate (``lambda a: ...``) true
    for every correct one. Numbers match when ``|answer - expected| <= max(rel *
    |expected|, abs_tol)``; other values must be equal.

    Nothing measured is shown before an answer is given: ``None`` only says
    "not answered yet". Once answered, a right answer is confirmed with the
    measured value; a wrong one is matched against ``mistakes`` (each key a
    value, compared with the same tolerance, or a predicate), whose message
    names the likely mistake ("you counted the response bytes but not the
    request's"); otherwise the feedback says whether it is too high or too low
    and adds ``hint``. ``reveal`` (e.g. how the measured value comes about) is
    printed after any answer, never before.
    """
    if answer is None:
        print(f"\u2026 {name}: not answered yet. Set it in the cell above, then run this cell again.")
        return None
    suffix = f" {unit}" if unit else ""
    shown = f"{answer:g}{suffix}" if _is_number(answer) else repr(answer)
    if _is_number(answer) and not math.isfinite(answer):
        print(f"\u2718 {name} = {answer!r} is not a finite number.")
        right = False
    elif _matches(answer, expected, rel, abs_tol):
        measured = "" if callable(expected) else (
            f" (measured: {expected:g}{suffix})" if _is_number(expected) else f" (measured: {expected!r})")
        print(f"\u2714 {name} = {shown}: right{measured}.")
        right = True
    else:
        pairs = list(mistakes.items()) if isinstance(mistakes, Mapping) else list(mistakes or [])
        known = next((message for target, message in pairs if _matches(answer, target, rel, abs_tol)), None)
        if known is not None:
            print(f"\u2718 {name} = {shown}: {known}")
        elif _is_number(answer) and _is_number(expected):
            direction = "too high" if answer > expected else "too low"
            print(f"\u2718 {name} = {shown} is {direction}." + (f" {hint}" if hint else
                  " Think again about the model, or look again at the measurement above."))
        else:
            print(f"\u2718 {name} = {shown} is not it." + (f" {hint}" if hint else
                  " Have another look at the measurement above."))
        right = False
    if reveal:
        print(f"  {reveal}")
    return right
