"""``python -m rtkit bench``: every transport against raw baselines measured in the same run.

See :mod:`rtkit.bench.run` for what is measured and how.
"""

from rtkit.bench.run import (
    FIGURE_KEYS,
    BenchSettings,
    Figure,
    add_arguments,
    format_table,
    main,
    run_bench,
)

__all__ = ["FIGURE_KEYS", "BenchSettings", "Figure", "add_arguments", "format_table", "main", "run_bench"]
