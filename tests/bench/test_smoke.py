"""`python -m bench --smoke` runs every HTTP row of the bench with tiny sizes and prints
a figure for each: the bench works on this checkout. It measures nothing (one-second
loads on a shared machine), so nothing here compares speeds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"\d[\d,]*(\.\d+)?"


def test_every_row_prints_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {}
    for line in done.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] not in ("row", "---"):
            rows[(cells[0], cells[2])] = cells
    expected = {(row, "SQLite") for row in ("R1", "R1p", "R2", "R6", "memory")}
    assert set(rows) == expected | {("R7", "PostgreSQL")}, done.stdout
    for (row, _), (_, _, _, gateway, floor, ratio, latency) in rows.items():
        assert re.search(NUMBER, gateway), (row, gateway)
        if row == "R7":
            assert floor == "overspent members: 0", floor
            assert re.search(rf"p50 {NUMBER} / p99 {NUMBER} ms", latency), latency
            continue
        assert re.search(NUMBER, floor), (row, floor)
        assert float(ratio.rstrip("×")) > 0, (row, ratio)
        if row != "memory":
            assert "errors" not in gateway + floor, (row, gateway, floor)
            assert re.fullmatch(rf"{NUMBER} / {NUMBER} ms at {NUMBER} req/s", latency), latency
