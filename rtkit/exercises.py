"""Feedback for the "Try it" exercises at the end of each course notebook.

>>> my_answer = None                     # the reader fills this in
>>> check_answer(my_answer, 150, rel=0.2, name="my_answer", unit="ms")
… my_answer: not answered yet. Set it in the cell above, then run this cell again.

Unlike :func:`rtkit.course.check` (which raises, so a regression fails the
notebook test), a wrong answer here only prints: running all cells still
reaches the clean-up cell at the end of the notebook.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_answer"]


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
