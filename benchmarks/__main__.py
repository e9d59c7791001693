"""``python -m benchmarks run [SCENARIO...] [--quick] [--runs N] [--out DIR]``; ``python -m benchmarks list``."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import report
from benchmarks.harness import log, raise_fd_limit
from benchmarks.scenarios import SCENARIOS, Params

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run scenarios (all by default) and write the results files")
    run.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (case-insensitive)"
    )
    run.add_argument(
        "--quick", action="store_true", help="tiny sizes, one run each: a smoke test, not a measurement"
    )
    run.add_argument(
        "--runs", type=int, default=None, help="alternating runs per side (default 3, --quick 1)"
    )
    run.add_argument(
        "--merge",
        action="store_true",
        help="keep the other scenarios' results already in --out (re-run some scenarios, one table)",
    )
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    sub.add_parser("list", help="list the scenarios")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, fn in SCENARIOS.items():
            print(f"{name:5} {(fn.__doc__ or '').strip()}")
        return 0
    by_name = {name.lower(): name for name in SCENARIOS}
    chosen = []
    for name in args.scenarios or list(SCENARIOS):
        if name.lower() not in by_name:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        chosen.append(by_name[name.lower()])
    raise_fd_limit()
    params = Params.make(args.quick, args.runs)
    command = (
        "python -m benchmarks run"
        + "".join(f" {c}" for c in args.scenarios)
        + (" --quick" if args.quick else "")
    )
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "commit": report.commit(),
        "command": command,
        "quick": args.quick,
        "runs": params.runs,
    }
    results = []
    started = time.monotonic()
    failed = False
    for name in chosen:
        log(f"== {name}")
        t0 = time.monotonic()
        try:
            res = SCENARIOS[name](params)
        except Exception as exc:  # noqa: BLE001 - one failed scenario must not hide the others' numbers
            traceback.print_exc()
            res = {"id": name, "error": f"{type(exc).__name__}: {exc}"}
            failed = True
        res["seconds"] = round(time.monotonic() - t0, 1)
        results.append(res)
        if "error" not in res:
            o = res["oort"]["median"] if res["oort"] else float("nan")
            ratio = f", {res['ratio']:.2f}x baseline" if res["ratio"] is not None else ""
            log(
                f"   {name}: {o:,.2f} {res['unit']}{ratio} (target {res['target']}: met={res['met']}) in {res['seconds']} s"
            )
    meta["seconds"] = round(time.monotonic() - started, 1)
    previous = args.out / "results.json"
    if args.merge and previous.exists():
        old = json.loads(previous.read_text())
        fresh = {res["id"].upper() for res in results}
        kept = [res for res in old["results"] if res["id"].upper() not in fresh]
        order = {name.upper(): i for i, name in enumerate(SCENARIOS)}
        results = sorted(kept + results, key=lambda res: order.get(res["id"].upper(), 99))
        meta["merged_into"] = old["meta"]
        meta["command"] = f"{old['meta']['command']}, then {command} --merge"
    files = report.write(results, meta, args.out)
    print(report.markdown(results, meta))
    log("wrote " + ", ".join(str(f) for f in files))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
