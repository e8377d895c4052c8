"""Per-transport summaries of a recorder's DataFrame.

Delivery is judged against what was published: every client should receive
every id in ``expected_ids`` exactly once, in order. Anything else is counted,
never hidden:

- ``lost``: expected (client, id) pairs never delivered (gaps included);
- ``duplicated``: deliveries of an id the client already had;
- ``out_of_order``: deliveries of an id lower than one the client already had.

``gaps`` and ``missed_in_gaps`` count what the server reported as no longer
retained: when ``lost == missed_in_gaps`` every loss was announced, none silent.

Latency and cost are computed in one place, :func:`latency_summary`, which
:func:`summarize`, the plots' legends and the live dashboard's table all use,
so a p99 means the same thing on every screen.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["LATENCY_COLUMNS", "SUMMARY_COLUMNS", "client_delivery", "latency_summary", "summarize"]

#: The columns :func:`latency_summary` fills (a run of :data:`SUMMARY_COLUMNS`).
LATENCY_COLUMNS = [
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "requests_per_msg",
    "bytes_per_msg",
    "bytes_in_per_msg",
    "bytes_out_per_msg",
    "empty_responses",
]

SUMMARY_COLUMNS = [
    "clients",
    "delivered",
    "lost",
    "duplicated",
    "out_of_order",
    "gaps",
    "missed_in_gaps",
    *LATENCY_COLUMNS,
    "server_cpu_s",
]


def latency_summary(
    latency_ms: np.ndarray | pd.Series | list[float],
    *,
    delivered: int | None = None,
    requests: int = 0,
    bytes_in: int = 0,
    bytes_out: int = 0,
    empty_responses: int = 0,
) -> dict[str, float]:
    """Latency percentiles and cost per message of one transport (:data:`LATENCY_COLUMNS`).

    ``latency_ms``: one value per receipt. Percentiles interpolate linearly
    (numpy's default); NaN without receipts. Costs are totals divided by
    ``delivered`` (default: the number of latencies): ``bytes_per_msg`` counts
    both directions, ``bytes_in_per_msg`` what the client read and
    ``bytes_out_per_msg`` what it wrote (requests included).
    """
    lat = np.asarray(latency_ms, dtype=float)
    n = len(lat) if delivered is None else delivered
    q = np.percentile(lat, [50, 95, 99]) if len(lat) else [np.nan] * 3

    def per_message(total: float) -> float:
        return total / n if n else np.nan

    return {
        "latency_p50_ms": float(q[0]),
        "latency_p95_ms": float(q[1]),
        "latency_p99_ms": float(q[2]),
        "latency_max_ms": float(lat.max()) if len(lat) else np.nan,
        "requests_per_msg": per_message(requests),
        "bytes_per_msg": per_message(bytes_in + bytes_out),
        "bytes_in_per_msg": per_message(bytes_in),
        "bytes_out_per_msg": per_message(bytes_out),
        "empty_responses": int(empty_responses),
    }


def client_delivery(df: pd.DataFrame, expected_ids: range) -> pd.DataFrame:
    """Per client: delivered, lost, duplicated and out-of-order counts."""
    out = []
    expected = set(expected_ids)
    for (transport, client), rows in df.groupby(["transport", "client"], observed=True, sort=True):
        ids = rows["id"].to_numpy()
        unique = set(ids.tolist())
        running_max = np.maximum.accumulate(ids) if len(ids) else ids
        out_of_order = int((ids[1:] < running_max[:-1]).sum()) if len(ids) > 1 else 0
        out.append(
            {
                "transport": transport,
                "client": client,
                "delivered": len(unique & expected),
                "lost": len(expected - unique),
                "duplicated": len(ids) - len(unique),
                "out_of_order": out_of_order,
            }
        )
    return pd.DataFrame(out, columns=["transport", "client", "delivered", "lost", "duplicated", "out_of_order"])


def summarize(
    df: pd.DataFrame,
    expected_ids: range,
    *,
    clients: Mapping[str, list[str]] | None = None,
    gaps: pd.DataFrame | None = None,
    server_cpu_s: Mapping[str, float] | None = None,
    totals: Mapping[str, Mapping[str, int]] | None = None,
) -> pd.DataFrame:
    """One row per transport (see :data:`SUMMARY_COLUMNS`).

    ``clients`` maps each transport to the names of all its clients, so a
    client that received nothing at all is still counted (as all lost).
    ``server_cpu_s`` gives server-thread CPU seconds where measurable.
    ``totals`` maps a transport to its clients' whole-run ``requests``,
    ``bytes_in``, ``bytes_out`` and ``empty_responses`` (costs after the last
    delivery included); without it the DataFrame's attributed columns are summed.
    ``bytes_per_msg`` counts both directions; ``bytes_in_per_msg`` and
    ``bytes_out_per_msg`` split it.
    """
    clients = dict(clients or {t: sorted(g["client"].unique()) for t, g in df.groupby("transport", observed=True)})
    per_client = client_delivery(df, expected_ids).set_index("client")
    rows = {}
    for transport, names in clients.items():
        sub = df[df["transport"] == transport]
        known = per_client[per_client.index.isin(names)]
        silent = len(names) - len(known)  # clients with no rows lost everything
        delivered = int(known["delivered"].sum())
        own_gaps = gaps[gaps["transport"] == transport] if gaps is not None else None
        n_gaps = 0 if own_gaps is None else len(own_gaps)
        missed = 0 if own_gaps is None else int(own_gaps["missed"].sum())
        spent = (totals or {}).get(transport) or {
            "requests": int(sub["requests"].sum()),
            "bytes_in": int(sub["bytes_in"].sum()),
            "bytes_out": int(sub["bytes_out"].sum()),
            "empty_responses": int(sub["empty_responses"].sum()),
        }
        rows[transport] = {
            "clients": len(names),
            "delivered": delivered,
            "lost": int(known["lost"].sum()) + silent * len(expected_ids),
            "duplicated": int(known["duplicated"].sum()),
            "out_of_order": int(known["out_of_order"].sum()),
            "gaps": n_gaps,
            "missed_in_gaps": missed,
            **latency_summary(sub["latency_ms"].to_numpy(), delivered=delivered,
                              requests=spent["requests"], bytes_in=spent["bytes_in"],
                              bytes_out=spent["bytes_out"], empty_responses=spent["empty_responses"]),
            "server_cpu_s": (server_cpu_s or {}).get(transport, np.nan),
        }
    result = pd.DataFrame.from_dict(rows, orient="index", columns=SUMMARY_COLUMNS)
    result.index.name = "transport"
    return result
