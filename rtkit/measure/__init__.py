"""Measuring transports: the recorder, workloads, the experiment runner, summaries."""

from rtkit.core.transports import TRANSPORTS
from rtkit.measure.recorder import COLUMNS, GAP_COLUMNS, Recorder
from rtkit.measure.runner import Experiment, ExperimentResult, run_experiment
from rtkit.measure.summary import SUMMARY_COLUMNS, client_delivery, summarize
from rtkit.measure.workload import PATTERNS, Workload, make_payload

__all__ = [
    "COLUMNS",
    "GAP_COLUMNS",
    "PATTERNS",
    "SUMMARY_COLUMNS",
    "TRANSPORTS",
    "Experiment",
    "ExperimentResult",
    "Recorder",
    "Workload",
    "client_delivery",
    "make_payload",
    "run_experiment",
    "summarize",
]
