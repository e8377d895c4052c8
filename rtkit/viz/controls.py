"""The dashboard's controls: transports to run and a workload, in exact steps.

Every slider offers round values only (50 msg/s, 100 B, 0.25 s), and the value
it shows is the value the run uses: :meth:`Controls.settings` reads the
sliders' values, never a rounded readout. A default outside the steps (say
``rate=37``) is added as a step of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import ipywidgets as widgets

from rtkit.core.api import DEFAULT_LONGPOLL_HOLD, DEFAULT_POLL_INTERVAL
from rtkit.core.transports import TRANSPORTS, transport_label

__all__ = ["DEFAULTS", "STEPS", "Controls", "check_defaults"]

#: Every option a dashboard takes, and its default.
DEFAULTS: dict[str, Any] = {
    "transports": TRANSPORTS,
    "rate": 50.0,
    "payload": 100,
    "poll_interval": DEFAULT_POLL_INTERVAL,
    "longpoll_hold": DEFAULT_LONGPOLL_HOLD,
    "duration": 5.0,
    "clients": 1,
}

#: The values each slider offers.
STEPS: dict[str, tuple[float, ...]] = {
    "rate": (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
    "payload": (16, 32, 64, 100, 128, 256, 512, 1024, 2048, 4096, 16384, 65536),
    "poll_interval": (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5),
    "longpoll_hold": (0.5, 1, 2, 5, 10, 20, 30, 60, 120),
    "duration": (0.5, 1, 2, 3, 5, 10, 20, 30, 60),
    "clients": (1, 2, 5, 10, 20, 50),
}

_LABELS = {
    "rate": "rate (msg/s)",
    "payload": "payload (B)",
    "duration": "duration (s)",
    "clients": "clients each",
    "poll_interval": "poll every (s)",
    "longpoll_hold": "long-poll hold (s)",
}


def _options(name: str, value: float) -> list[tuple[str, float]]:
    kind = int if name in ("payload", "clients") else float
    values = sorted({kind(v) for v in (*STEPS[name], value)})
    return [(f"{v:g}", v) for v in values]


class Controls:
    """The widgets: a checkbox per transport, a slider per setting, Start and
    Stop buttons, and a status line. :attr:`box` is the whole panel."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        style = {"description_width": "9em"}
        slider = widgets.Layout(width="340px")
        chosen = set(defaults["transports"])
        self.transport_boxes = {
            t: widgets.Checkbox(value=t in chosen, description=transport_label(t), indent=False,
                                layout=widgets.Layout(width="130px"))
            for t in TRANSPORTS
        }
        self.sliders: dict[str, widgets.SelectionSlider] = {}
        for name in ("rate", "payload", "duration", "clients", "poll_interval", "longpoll_hold"):
            options = _options(name, defaults[name])
            value = next(v for _, v in options if v == defaults[name])
            self.sliders[name] = widgets.SelectionSlider(
                options=options, value=value, description=_LABELS[name], continuous_update=False,
                style=style, layout=slider)
        self.start_button = widgets.Button(description="Start", icon="play", button_style="success",
                                           layout=widgets.Layout(width="110px"))
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger",
                                          disabled=True, layout=widgets.Layout(width="110px"))
        self.status = widgets.HTML(value="<i>ready: choose transports and press Start</i>",
                                   layout=widgets.Layout(width="auto"))
        boxes = list(self.transport_boxes.values())
        s = self.sliders
        self.box = widgets.VBox([
            widgets.HBox([
                widgets.VBox([widgets.HTML("<b>Transports</b>"), widgets.HBox(boxes[:2]),
                              widgets.HBox(boxes[2:]),
                              widgets.HBox([self.start_button, self.stop_button])],
                             layout=widgets.Layout(width="290px")),
                widgets.VBox([widgets.HTML("<b>Workload</b>"), s["rate"], s["payload"],
                              s["duration"]]),
                widgets.VBox([widgets.HTML("<b>Clients and transport settings</b>"), s["clients"],
                              s["poll_interval"], s["longpoll_hold"]]),
            ], layout=widgets.Layout(flex_flow="row wrap")),
            self.status,
        ])

    def settings(self) -> dict[str, Any]:
        """The run the controls describe: exactly the values the sliders show."""
        s = self.sliders
        return {
            "transports": [t for t, box in self.transport_boxes.items() if box.value],
            "rate": float(s["rate"].value),
            "payload": int(s["payload"].value),
            "duration": float(s["duration"].value),
            "clients": int(s["clients"].value),
            "poll_interval": float(s["poll_interval"].value),
            "longpoll_hold": float(s["longpoll_hold"].value),
        }

    def shown(self) -> dict[str, str]:
        """What each slider displays (its readout), by setting name."""
        return {name: str(slider.label) for name, slider in self.sliders.items()}

    def widgets(self) -> Iterable[widgets.Widget]:
        """Every widget of the panel (for closing them)."""
        return _walk(self.box)


def _walk(widget: widgets.Widget) -> Iterable[widgets.Widget]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def check_defaults(defaults: dict[str, Any], steps: Sequence[str] = tuple(STEPS)) -> dict[str, Any]:
    """``defaults`` merged over :data:`DEFAULTS`; ``TypeError`` naming an unknown
    option, ``ValueError`` naming a value out of its slider's range."""
    unknown = set(defaults) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown Dashboard option(s) {sorted(unknown)}; accepted: {', '.join(DEFAULTS)}")
    merged = {**DEFAULTS, **defaults}
    for name in steps:
        value, allowed = merged[name], STEPS[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            min(allowed) <= value <= max(allowed)
        ):
            raise ValueError(f"{name} must be a number from {min(allowed):g} to {max(allowed):g}; "
                             f"got {value!r}")
    return merged
