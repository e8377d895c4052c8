"""Measuring transports: the recorder, workloads and timetables, the experiment runner,
summaries, and the kernel's own pauses.

- :mod:`rtkit.measure.recorder`: one row per delivered message per client;
- :mod:`rtkit.measure.workload` and :mod:`rtkit.measure.timetable`: what is published, and when;
- :mod:`rtkit.measure.subscribing`: waiting until every client is subscribed;
- :mod:`rtkit.measure.runner`: :class:`Experiment`, :func:`run_experiment`;
- :mod:`rtkit.measure.summary`: one summary of latency and cost per transport;
- :mod:`rtkit.measure.pauses`: garbage collections as data, and windows they stay out of;
- :mod:`rtkit.measure.polling` and :mod:`rtkit.measure.scenarios`: the course's experiments.
"""

from rtkit.core.transports import TRANSPORTS
from rtkit.measure.pauses import PAUSE_COLUMNS, PauseRecorder, freeze_collector, pause_overlap_ms
from rtkit.measure.recorder import COLUMNS, GAP_COLUMNS, RESET_COLUMNS, Recorder
from rtkit.measure.runner import Experiment, ExperimentResult, run_experiment
from rtkit.measure.subscribing import wait_subscribed
from rtkit.measure.summary import (
    LATENCY_COLUMNS,
    SUMMARY_COLUMNS,
    client_delivery,
    latency_summary,
    summarize,
)
from rtkit.measure.timetable import Timetable, publish_on_timetable
from rtkit.measure.workload import PATTERNS, Workload, make_payload

__all__ = [
    "COLUMNS",
    "GAP_COLUMNS",
    "LATENCY_COLUMNS",
    "PATTERNS",
    "PAUSE_COLUMNS",
    "RESET_COLUMNS",
    "SUMMARY_COLUMNS",
    "TRANSPORTS",
    "Experiment",
    "ExperimentResult",
    "PauseRecorder",
    "Recorder",
    "Timetable",
    "Workload",
    "client_delivery",
    "freeze_collector",
    "latency_summary",
    "make_payload",
    "pause_overlap_ms",
    "publish_on_timetable",
    "run_experiment",
    "summarize",
    "wait_subscribed",
]
