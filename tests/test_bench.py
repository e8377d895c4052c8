"""Tests for rtkit.bench: a quick run reports every figure, consistently.

Speed is not asserted here (that is what the benchmark prints); only that the
run completes, stops what it started and that its figures are complete and
coherent: positive, finite, ratios equal to value / raw baseline.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest

from rtkit.bench import FIGURE_KEYS, Figure, format_table
from rtkit.cli import main as cli_main
from rtkit.net.raw import RAW


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict]:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    threads_before = {t.ident for t in threading.enumerate()}
    code = cli_main(["bench", "--quick", "--json", str(path)])
    leftover = [
        t
        for t in threading.enumerate()
        if t.ident not in threads_before and t.name != "rtkit-clients"
    ]
    assert leftover == [], f"threads left running: {leftover}"
    return code, json.loads(path.read_text(encoding="utf-8"))


def test_quick_run_succeeds_and_prints_a_table(
    quick_run: tuple[int, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = quick_run
    assert code == 0
    assert set(doc) >= {"settings", "environment", "figures", "elapsed_s"}
    assert doc["settings"]["fanout"] == 50  # --quick sizes


def test_every_figure_for_every_transport(quick_run: tuple[int, dict]) -> None:
    _, doc = quick_run
    keys = [(f["test"], f["transport"], f["name"]) for f in doc["figures"]]
    assert sorted(keys) == sorted(FIGURE_KEYS)
    assert len(set(keys)) == len(keys)


def test_figures_are_positive_finite_and_ratios_are_value_over_baseline(
    quick_run: tuple[int, dict],
) -> None:
    _, doc = quick_run
    raw = {(f["test"], f["name"]): f["value"] for f in doc["figures"] if f["transport"] == RAW}
    for f in doc["figures"]:
        where = f"{f['test']}/{f['transport']}/{f['name']}"
        for field in ("value", "baseline", "ratio"):
            assert isinstance(f[field], (int, float)), where
            assert math.isfinite(f[field]) and f[field] > 0, f"{where} {field}={f[field]!r}"
        assert f["baseline"] == raw[(f["test"], f["name"])], where
        assert f["ratio"] == pytest.approx(f["value"] / f["baseline"], rel=1e-9), where
        if f["target"]:
            assert isinstance(f["met"], bool), where


def test_details_count_what_was_delivered(quick_run: tuple[int, dict]) -> None:
    _, doc = quick_run
    by_key = {(f["test"], f["transport"], f["name"]): f for f in doc["figures"]}
    for transport in (RAW, "sse", "ws", "longpoll", "poll"):
        detail = by_key[("latency", transport, "p50_ms")]["detail"]
        assert detail["received"] == detail["published"] > 0, transport
    both = by_key[("fanout", "sse+ws", "p99_ms")]["detail"]
    assert both["held"] == both["subscribers"] == 100
    assert both["receipts"] == both["expected_receipts"] > 0
    for transport in (RAW, "sse", "ws", "longpoll"):
        detail = by_key[("memory", transport, "kib_per_conn")]["detail"]
        assert detail["connections"] == 100


def test_format_table_marks_targets() -> None:
    figures = [
        Figure("latency", RAW, "p50_ms", 0.1, "ms", 0.1, 1.0),
        Figure("latency", "sse", "p50_ms", 0.2, "ms", 0.1, 2.0, "<= 1.5x raw", False),
        Figure("memory", "ws", "kib_per_conn", 12.0, "KiB", 4.0, 3.0, "<= 16 KiB", True),
    ]
    table = format_table(figures)
    lines = table.splitlines()
    assert lines[0].split() == [
        "test",
        "transport",
        "figure",
        "value",
        "raw",
        "ratio",
        "target",
        "met?",
    ]
    assert "NOT MET" in lines[3] and "2.00x" in lines[3]
    assert lines[4].rstrip().endswith("met") and "NOT" not in lines[4]


@pytest.mark.parametrize("argv", [["--fanout", "0"], ["--rate", "-1"], ["--duration", "0"]])
def test_bad_options_are_refused(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", *argv, "--json", str(tmp_path / "x.json")]) == 2
    assert argv[0].lstrip("-") in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
