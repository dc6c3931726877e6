"""The seed's "FINAL LEARNING RESULTS" table for any brain (reproduce_seed, live mode)."""
from __future__ import annotations

from typing import Mapping

RULE = "═" * 51


def final_results(brain, names: Mapping[int, str] | None = None) -> list[str]:
    """Lines of the seed's final table: per EXEC node WORKS/FAILS/UNTESTED, then the summary.

    A node with executions works when its success rate is >= 0.5. ``names`` optionally labels
    nodes (e.g. genome files) after their id.
    """
    names = names or {}
    lines = [RULE, "FINAL LEARNING RESULTS", RULE, ""]
    t = brain.exec_table()
    working = failing = untested = 0
    for node, s, thr, n in zip(t["node"].tolist(), t["success_rate"].tolist(),
                               t["threshold_ratio"].tolist(), t["executions"].tolist()):
        label = f"Node {node}" + (f" ({names[node]})" if node in names else "")
        if n == 0:
            untested += 1
            lines.append(f"⚪ {label}: UNTESTED (success={s:.3f}, threshold={thr:.3f})")
            lines.append("   Executions: 0")
        elif s >= 0.5:
            working += 1
            lines.append(f"✅ {label}: WORKS (success={s:.3f}, threshold={thr:.3f})")
            lines.append(f"   Executions: {n}")
            lines.append("   → WORKING! Easy to trigger (threshold ratio low)")
        else:
            failing += 1
            lines.append(f"❌ {label}: FAILS (success={s:.3f}, threshold={thr:.3f})")
            lines.append(f"   Executions: {n}")
            lines.append("   → FAILING! Hard to trigger (threshold ratio increasing)")
        lines.append("")
    lines += ["Summary:",
              f"  Working nodes: {working} (reinforced - easy to activate)",
              f"  Failing nodes: {failing} (suppressed - hard to activate)",
              f"  Untested: {untested}",
              f"  Patterns learned: {len(brain.byte_patterns)}"]
    return lines


def printable(text: str, encoding: str | None) -> str:
    """``text`` with characters the stream cannot encode replaced (e.g. an ASCII terminal)."""
    enc = encoding or "utf-8"
    return text.encode(enc, errors="replace").decode(enc)
