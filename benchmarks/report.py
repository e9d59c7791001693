"""Results files: ``results.json``, ``results.md`` (the README table) and ``results.png`` (matplotlib, optional)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu or platform.machine()}){mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()
    except OSError:
        return ""


def _num(value: float, unit: str) -> str:
    if unit in {"MB", "p99 ms"} or abs(value) < 100:
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,.0f}"


def _cell(summary: dict[str, float] | None, unit: str) -> str:
    if not summary:
        return "–"
    med, lo, hi = summary["median"], summary["min"], summary["max"]
    if lo == hi:
        return _num(med, unit)
    return f"{_num(med, unit)} ({_num(lo, unit)}–{_num(hi, unit)})"


def _extra(res: dict[str, Any]) -> str:
    parts = []
    for key, value in res["extra"].items():
        if key.startswith("run") or key == "steps":
            continue
        if isinstance(value, dict):
            if "median" in value:
                parts.append(f"{key} {value['median']:.2f}")
            elif "skipped" in value:
                parts.append(f"{key}: skipped ({value['skipped']})")
            else:
                parts.append(f"{key}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
        else:
            parts.append(f"{key} {value}")
    parts.extend(res["notes"])
    return "; ".join(parts)


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"Measured {meta['when']} on {meta['machine']}, commit {meta['commit'] or '?'}, with `{meta['command']}`"
        f" ({meta['runs']} alternating run(s) per side, median (min–max)).",
        "",
        "| scenario | unit | Oort | baseline | Oort/baseline | target | met | details |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        if "error" in res:
            lines.append(f"| {res['id']} | | failed | | | | no | {res['error']} |")
            continue
        base = _cell(res["baseline"], res["unit"])
        if res["baseline_name"]:
            base += f" ({res['baseline_name']})"
        ratio = f"{res['ratio']:.2f}×" if res["ratio"] is not None else "–"
        met = {True: "yes", False: "**no**", None: "–"}[res["met"]]
        lines.append(
            f"| {res['id']}: {res['title']} | {res['unit']} | {_cell(res['oort'], res['unit'])} | {base} | {ratio} "
            f"| {res['target']} | {met} | {_extra(res)} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> str | None:
    """Write the PNG; returns a note instead when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot"
    shown = [r for r in results if "error" not in r and r["oort"]]
    if not shown:
        return "nothing to plot"
    cols = min(4, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, res in zip(axes.flat, shown, strict=False):
        labels, meds, los, his, colors = [], [], [], [], []
        for name, color, summ in (("Oort", "#2a7ab9", res["oort"]), ("baseline", "#999999", res["baseline"])):
            if summ:
                labels.append(name)
                meds.append(summ["median"])
                los.append(summ["median"] - summ["min"])
                his.append(summ["max"] - summ["median"])
                colors.append(color)
        ax.bar(labels, meds, yerr=[los, his], color=colors, capsize=4)
        title = res["id"] + (f"  ({res['ratio']:.2f}×)" if res["ratio"] is not None else "")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(res["unit"], fontsize=8)
        ax.tick_params(labelsize=8)
    fig.suptitle("Oort benchmarks (median, min–max)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def write(results: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    note = plot(results, out / "results.png")
    if note:
        meta = {**meta, "plot": note}
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2, default=str) + "\n"
    )
    (out / "results.md").write_text(markdown(results, meta))
    return [out / name for name in ("results.json", "results.md", "results.png") if (out / name).exists()]
