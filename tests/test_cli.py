"""python -m rtkit: one parser, each subcommand's options from its own package."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from rtkit.cli import PIPELINE_CLI, build_parser


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtkit", *argv], capture_output=True, text=True,
                          timeout=120, check=False)


def test_help_lists_the_subcommands() -> None:
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    assert "compare" in proc.stdout and "bench" in proc.stdout


def test_bench_options_come_from_the_bench_package() -> None:
    from rtkit.bench import add_arguments

    assert add_arguments.__module__ == "rtkit.bench.cli"
    args = build_parser(["bench"]).parse_args(["bench", "--quick", "--fanout", "7"])
    assert args.quick and args.fanout == 7


def test_compare_takes_the_renamed_options() -> None:
    args = build_parser(["compare"]).parse_args(["compare", "--poll-interval", "0.2", "--longpoll-hold", "5"])
    assert (args.poll_interval, args.longpoll_hold) == (0.2, 5.0)
    with pytest.raises(SystemExit):
        build_parser(["compare"]).parse_args(["compare", "--interval", "0.2"])


def test_pipeline_help_works_once_the_pipeline_exists() -> None:
    try:
        present = importlib.util.find_spec(PIPELINE_CLI) is not None
    except ModuleNotFoundError:
        present = False
    if not present:
        pytest.skip(f"{PIPELINE_CLI} does not exist yet (the pipeline engineer adds it)")
    proc = _run("pipeline", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "pipeline" in proc.stdout and "--duration" in proc.stdout
