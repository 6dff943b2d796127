"""The duration-vs-L1 Pareto front of a sweep's results (what `ttsim sweep` marks and plots)."""

from __future__ import annotations


def pareto_front(rows: list[dict[str, str]]) -> set[int]:
    """Indices of ok rows that no other ok row beats on both duration and L1 bytes."""
    ok = [(i, float(r["device_kernel_duration_ns"]), int(r["l1_used_bytes"]))
          for i, r in enumerate(rows) if r["status"] == "ok"]
    front = set()
    for i, duration, l1 in ok:
        dominated = any(d <= duration and b <= l1 and (d < duration or b < l1) for _, d, b in ok)
        if not dominated:
            front.add(i)
    return front
