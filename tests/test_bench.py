"""Tests for rtkit.bench: a quick run reports every figure, consistently.

Speed is not asserted here (that is what the benchmark prints); only that the
run completes, stops what it started (threads and processes) and that its
figures are complete and coherent: positive, finite, each with the baseline of
the same run it names, ratios equal to value / baseline, counts that add up.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from rtkit.bench import FIGURE_KEYS, Figure, format_table
from rtkit.bench.figures import RAW, WEBSOCKETS, with_baseline
from rtkit.cli import main as cli_main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict]:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    threads_before = {t.ident for t in threading.enumerate()}
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    code = cli_main(["bench", "--quick", "--json", str(path)])
    leftover = [t for t in threading.enumerate()
                if t.ident not in threads_before and t.name != "rtkit-clients"]
    assert leftover == [], f"threads left running: {leftover}"
    children = [p for p in psutil.Process().children(recursive=True) if p.pid not in children_before]
    assert children == [], f"processes left running: {children}"
    return code, json.loads(path.read_text(encoding="utf-8"))


def _by_key(doc: dict) -> dict[tuple[str, str, str], dict]:
    return {(f["test"], f["transport"], f["name"]): f for f in doc["figures"]}


@pytest.mark.slow  # a whole quick run: ~30 s here, a minute with Redis on a busy machine
def test_quick_run_succeeds(quick_run: tuple[int, dict]) -> None:
    code, doc = quick_run
    assert code == 0
    assert set(doc) >= {"settings", "environment", "figures", "elapsed_s", "notes"}
    assert doc["settings"]["fanout"] == 50  # --quick sizes
    assert any(note.startswith("Redis figures") for note in doc["notes"])  # said, never hidden


@pytest.mark.slow  # a whole quick run: ~30 s here, a minute with Redis on a busy machine
def test_every_figure_for_every_transport(quick_run: tuple[int, dict]) -> None:
    _, doc = quick_run
    keys = [(f["test"], f["transport"], f["name"]) for f in doc["figures"]]
    assert len(set(keys)) == len(keys)
    assert set(FIGURE_KEYS) <= set(keys)
    extra = [k for k in keys if k not in FIGURE_KEYS]
    assert all(k[0] == "redis" for k in extra)  # rows from rtkit.scale.bench, when Redis is there
    for key in extra:
        f = _by_key(doc)[key]
        assert math.isfinite(f["value"]) and f["target"] and isinstance(f["met"], bool), key


@pytest.mark.slow  # a whole quick run: ~30 s here, a minute with Redis on a busy machine
def test_figures_are_finite_with_their_named_baseline_and_ratio(quick_run: tuple[int, dict]) -> None:
    _, doc = quick_run
    by_key = _by_key(doc)
    for key, f in by_key.items():
        if key not in FIGURE_KEYS:
            continue  # Redis rows: rtkit.scale.bench's own (see test_every_figure_for_every_transport)
        where = "/".join(key)
        if key[0] == "memory" and f["baseline"] == 0:
            # 200 raw sockets can fit in memory the process already had: an RSS delta
            # of 0 is a measurement, not an error; then there is no ratio to it
            assert math.isfinite(f["value"]) and f["ratio"] is None, where
            continue
        for field in ("value", "baseline", "ratio"):
            assert isinstance(f[field], (int, float)), where
            assert math.isfinite(f[field]), f"{where} {field}={f[field]!r}"
            if key[0] != "memory":  # an RSS delta is whatever the OS says; nothing else is <= 0
                assert f[field] > 0, f"{where} {field}={f[field]!r}"
        assert f["ratio"] == pytest.approx(f["value"] / f["baseline"], rel=1e-9), where
        if f["baseline_name"] in (RAW, WEBSOCKETS) and key[0] != "redis":
            baseline = by_key[(key[0], f["baseline_name"], key[2])]  # the baseline's own row
            assert f["baseline"] == baseline["value"], where
        if f["target"]:
            assert isinstance(f["met"], bool), where
    for transport in ("sse", "ws"):  # judged against both baselines
        latency = by_key[("latency", transport, "p50_ms")]
        ws_p50 = by_key[("latency", WEBSOCKETS, "p50_ms")]["value"]
        assert latency["detail"]["ratio_to_websockets"] == pytest.approx(latency["value"] / ws_p50)
        assert "websockets" in latency["target"]


@pytest.mark.slow  # a whole quick run: ~30 s here, a minute with Redis on a busy machine
def test_details_count_what_was_delivered(quick_run: tuple[int, dict]) -> None:
    _, doc = quick_run
    by_key = _by_key(doc)
    for transport in (RAW, WEBSOCKETS, "sse", "ws", "longpoll", "poll"):
        detail = by_key[("latency", transport, "p50_ms")]["detail"]
        assert detail["received"] == detail["published"] > 0, transport
    both = by_key[("fanout", "sse+ws", "p99_ms")]["detail"]
    assert both["held"] == both["subscribers"] == 100
    assert both["receipts"] == both["expected_receipts"] == 100 * both["messages"] > 0
    assert both["client_processes"] >= 2  # the subscribers ran in other processes
    assert both["client_cpu_s"] > 0 and both["server_cpu_s"] > 0  # and used CPU there
    raw = by_key[("fanout", RAW, "p99_ms")]["detail"]
    assert raw["held"] == raw["subscribers"] == 100 and raw["receipts"] == raw["expected_receipts"]
    for transport in ("sse", "ws"):
        one = by_key[("fanout", transport, "p99_ms")]["detail"]
        assert one["receipts"] == one["expected_receipts"] == 50 * one["messages"]
    for transport in (RAW, WEBSOCKETS, "sse", "ws", "longpoll"):
        detail = by_key[("memory", transport, "kib_per_conn")]["detail"]
        assert detail["connections"] == 200
    for name in ("p99_ms", "p99_ms_drawn_in_kernel"):
        dash = by_key[("dashboard", "sse", name)]
        assert dash["baseline_name"] == "no dashboard" and dash["detail"]["messages"] > 0
    assert by_key[("dashboard", "-", "kernel_cpu_ms_per_frame")]["baseline_name"] == "drawn in the kernel"


def test_format_table_names_baselines_and_marks_targets() -> None:
    figures = [
        Figure("latency", RAW, "p50_ms", 0.1, "ms", 0.1, 1.0),
        Figure("latency", "sse", "p50_ms", 0.2, "ms", 0.1, 2.0, "<= 1.2x raw", False),
        with_baseline(Figure("dashboard", "sse", "p99_ms", 3.0, "ms"), 1.5, "no dashboard"),
        Figure("memory", "ws", "kib_per_conn", 7.0, "KiB", 4.0, 1.75, "<= 8 KiB", True),
    ]
    lines = format_table(figures).splitlines()
    assert lines[0].split() == ["test", "transport", "figure", "value", "baseline", "vs", "ratio",
                                "target", "met?"]
    assert "NOT MET" in lines[3] and "2.00x" in lines[3]
    assert "no dashboard" in lines[4] and "2.00x" in lines[4]
    assert lines[5].rstrip().endswith("met") and "NOT" not in lines[5]


@pytest.mark.parametrize("argv", [["--fanout", "0"], ["--rate", "-1"], ["--duration", "0"]])
def test_bad_options_are_refused(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", *argv, "--json", str(tmp_path / "x.json")]) == 2
    assert argv[0].lstrip("-") in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_importing_the_figures_does_not_start_or_import_servers() -> None:
    code = ("import sys; import rtkit.bench as b; b.Figure('t', 'x', 'n', 1.0, 'ms'); "
            "print('rtkit.bench.runner' in sys.modules, 'rtkit.bench.wsbaseline' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True).stdout.split()
    assert out == ["False", "False"]
