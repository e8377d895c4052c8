"""What the live dashboard costs the measurement it shows.

The same SSE run at ``s.rate`` msg/s three ways, interleaved over
``s.rounds`` rounds: with no dashboard, with a dashboard drawing in its own
process (the default), and with one drawing in the kernel (``render="thread"``).
The p99 latencies say how much the drawing disturbs the measurement; the
frames per second and the kernel's CPU per frame what it costs.
"""

from __future__ import annotations

from typing import Any

from rtkit.bench.figures import percentile
from rtkit.bench.settings import BenchSettings
from rtkit.measure import Workload, run_experiment

__all__ = ["MODES", "dashboard_cost"]

#: The three ways the run is made.
MODES = ("none", "process", "thread")


def _with_dashboard(render: str, s: BenchSettings, seconds: float) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")  # no display: the frames are PNG bytes either way
    from rtkit.viz.dashboard import Dashboard

    dash = Dashboard(transports=["sse"], rate=s.rate, duration=seconds, payload=s.payload,
                     render=render).start()
    try:
        experiment = dash.run()
        if not dash.wait(seconds + 60):
            raise RuntimeError(f"the dashboard's run ({render}) did not end")
        latencies = experiment.result(0).df["latency_ms"].tolist()
        return {"latencies_ms": latencies, **dash.frame_stats()}
    finally:
        dash.close()


def dashboard_cost(s: BenchSettings) -> dict[str, dict[str, Any]]:
    """Per mode (:data:`MODES`): every SSE latency (ms) pooled over the rounds, and
    for the dashboards the frames per second and CPU per frame (mean of rounds)."""
    seconds = s.dashboard_seconds
    out: dict[str, dict[str, Any]] = {m: {"latencies_ms": [], "rounds": []} for m in MODES}
    for _ in range(s.rounds):
        for mode in MODES:
            if mode == "none":
                result = run_experiment(["sse"], Workload(rate=s.rate, duration=seconds, payload=s.payload))
                run = {"latencies_ms": result.df["latency_ms"].tolist()}
            else:
                run = _with_dashboard(mode, s, seconds)
            out[mode]["latencies_ms"] += run.pop("latencies_ms")
            out[mode]["rounds"].append(run)
    for mode, data in out.items():
        data["p99_ms"] = percentile(data["latencies_ms"], 99)
        data["p50_ms"] = percentile(data["latencies_ms"], 50)
        data["messages"] = len(data["latencies_ms"])
        rounds = data["rounds"]
        for key in ("frames_per_s", "kernel_cpu_ms_per_frame", "draw_cpu_ms_per_frame"):
            values = [r[key] for r in rounds if key in r]
            if values:
                data[key] = sum(values) / len(values)
        del data["latencies_ms"]
    return out
