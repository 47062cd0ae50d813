"""Run every benchmark: `python -m bench` (or `make bench`).

`--smoke` runs each HTTP row once with tiny sizes and one-second loads (a check that the
bench works, not a measurement); `--full` runs the sizes of DESIGN §10 (R6 at 1,000,000
members, R7 with 10,000 attempts, memory at minutes 2 and 10). The table of the HTTP rows
is printed and written to bench/RESULTS.md with the machine and the versions, followed by
what the other scenarios (R3, R4, R5, webhooks, inbound) print.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
from pathlib import Path

from bench import harness, http_rows
from bench.http_rows import Row

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def table(rows: list[Row]) -> str:
    lines = [
        "| row | scenario | database | gateway | floor, same run | ratio | p50 / p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}×" if row.ratio is not None else "–"
        lines.append(
            f"| {row.id} | {row.scenario} | {row.database} | {row.gateway} | {row.floor} | "
            f"{ratio} | {row.latency or '–'} |"
        )
    notes = [f"- {row.id} ({row.database}): {row.note}" for row in rows if row.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def others() -> str:
    """What the scenarios with their own scripts print (R3, R4, R5, webhooks, inbound)."""
    from bench import backends, backends_salesforce_woocommerce, inbound, live_events, webhooks

    out = io.StringIO()
    for module in (live_events, webhooks, inbound, backends, backends_salesforce_woocommerce):
        with contextlib.redirect_stdout(out):
            asyncio.run(module.main())
            print()
    return out.getvalue()


def rows_named(text: str) -> frozenset[str]:
    """`--only`'s value: row ids, each one of `http_rows.ROWS`."""
    named = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = named - http_rows.ROWS
    if not named or unknown:
        named_badly = ", ".join(sorted(unknown)) or repr(text)
        raise argparse.ArgumentTypeError(f"no such rows: {named_badly}")
    return named


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="tiny sizes, one-second loads")
    size.add_argument("--full", action="store_true", help="the full sizes and durations")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument(
        "--only",
        type=rows_named,
        metavar="ROWS",
        help=f"only these HTTP rows, comma-separated ({', '.join(sorted(http_rows.ROWS))}); "
        "the other scenarios are skipped and RESULTS.md is left alone",
    )
    databases = parser.add_mutually_exclusive_group()
    databases.add_argument("--sqlite-only", action="store_true", help="no PostgreSQL rows")
    databases.add_argument("--postgres-only", action="store_true", help="no SQLite rows")
    args = parser.parse_args()
    harness.require_wrk()
    sizes = http_rows.SMOKE if args.smoke else http_rows.FULL if args.full else http_rows.Sizes()
    rows: list[Row] = []
    if not args.postgres_only:
        rows += http_rows.run("sqlite", sizes, args.only)
    if not args.sqlite_only:
        postgres = sizes.postgres_rows if args.only is None else sizes.postgres_rows & args.only
        if postgres:
            rows += http_rows.run("postgres", sizes, postgres)
    printed = table(rows)
    print(printed, flush=True)
    if args.smoke or args.only is not None:
        return
    rest = others()
    print()
    print(rest)
    if not args.no_write:
        write_results(printed, rest, "full" if args.full else "default")


def write_results(printed: str, rest: str, mode: str) -> None:
    machine = harness.machine()
    facts = "\n".join(f"- {name}: {value}" for name, value in machine.items())
    section = (
        f"\n## make bench ({machine['date']}, {mode} sizes)\n\n{facts}\n\n"
        "Throughput is the maximum (`wrk -t1 -c16`); p50 / p99 come from a second `wrk` "
        "run offered about half of it (connections pausing between requests with Lua "
        "`delay()`), at the rate printed. R6's ratio is the slowdown from 10,000 members; "
        "memory's is the growth between its two samples.\n\n"
        f"{printed}\n\n### The other scenarios, same run\n\n```\n{rest.strip()}\n```\n"
    )
    with RESULTS.open("a") as results:
        results.write(section)


if __name__ == "__main__":
    main()
