"""Measuring transports: the recorder, workloads, the experiment runner, summaries."""

from rtkit.measure.recorder import COLUMNS, GAP_COLUMNS, Recorder
from rtkit.core.transports import TRANSPORTS
from rtkit.measure.runner import Experiment, ExperimentResult, run_experiment
from rtkit.measure.summary import SUMMARY_COLUMNS, client_delivery, summarize
from rtkit.measure.workload import PATTERNS, Workload, make_payload

__all__ = [
    "COLUMNS",
    "GAP_COLUMNS",
    "Recorder",
    "TRANSPORTS",
    "Experiment",
    "ExperimentResult",
    "run_experiment",
    "SUMMARY_COLUMNS",
    "client_delivery",
    "summarize",
    "PATTERNS",
    "Workload",
    "make_payload",
]
