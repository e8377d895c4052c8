"""Helpers the course notebooks share: quick mode and checking an answer.

Quick mode (``RTKIT_QUICK=1`` in the environment, as the test suite sets it)
shortens every experiment in the notebooks so the whole course runs in
seconds; the claims checked in the notebooks hold in both modes.
"""

from __future__ import annotations

import os

__all__ = ["QUICK", "pick", "check"]

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
