"""What the course notebooks share: quick mode, checking a claim, checking an answer.

Quick mode (``RTKIT_QUICK=1`` in the environment, as the test suite sets it)
shortens every experiment in the notebooks so the whole course runs in
seconds; the claims checked in the notebooks hold in both modes.

- :func:`check` states a measured fact and raises when it does not hold, so an
  automated run of a notebook fails on a regression;
- :func:`check_answer` gives feedback on a "Try it" exercise and only prints,
  so Run All still reaches the clean-up cell with a wrong or missing answer.

>>> my_answer = None                     # the reader fills this in
>>> check_answer(my_answer, 150, rel=0.2, name="my_answer", unit="ms")
… my_answer: not answered yet. Set it in the cell above, then run this cell again.
"""

from __future__ import annotations

import math
import os
from typing import Any

__all__ = ["QUICK", "check", "check_answer", "pick"]

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


def check_answer(
    answer: Any,
    expected: Any,
    *,
    rel: float = 0.0,
    abs_tol: float = 0.0,
    name: str = "answer",
    unit: str = "",
) -> bool | None:
    """Say whether ``answer`` matches ``expected``; returns True, False or None.

    Numbers match when ``|answer - expected| <= max(rel * |expected|, abs_tol)``
    (the hint says whether a wrong one is too high or too low); other values
    must be equal. ``None`` means "not answered yet" and is not an error.
    """
    if answer is None:
        print(f"\u2026 {name}: not answered yet. Set it in the cell above, then run this cell again.")
        return None
    suffix = f" {unit}" if unit else ""
    numeric = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in (answer, expected)
    )
    if numeric:
        if not math.isfinite(answer):
            print(f"\u2718 {name} = {answer!r} is not a finite number.")
            return False
        tolerance = max(rel * abs(expected), abs_tol)
        if abs(answer - expected) <= tolerance:
            print(f"\u2714 {name} = {answer:g}{suffix}: right (expected {expected:g}{suffix}).")
            return True
        direction = "too high" if answer > expected else "too low"
        print(f"\u2718 {name} = {answer:g}{suffix} is {direction}. Think again about the model, "
              f"or compare with the measurement printed above.")
        return False
    if answer == expected:
        print(f"\u2714 {name} = {answer!r}: right.")
        return True
    print(f"\u2718 {name} = {answer!r} is not it. Have another look at the measurement above.")
    return False
