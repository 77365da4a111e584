"""``python -m bench [--quick] [--storage URL] [--json FILE] [--compare-dbos] [--rounds N]``: run
the shapes, print a table."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bench import compare
from bench.floor import commit_floor
from bench.http_starts import http_starts
from bench.idle import idle_host
from bench.measure import BenchError, Result, common_shapes, latency_runs, median_round
from bench.report import Row, describe_machine, machine_line, payload, table
from bench.shapes import run_embedded, scenarios
from bench.stores import (
    StorageError,
    check_storage,
    describe_dbos,
    describe_durafn,
    durafn_store,
)


def run(
    folder: Path, storage: str | None, quick: bool, compare_dbos: bool, rounds: int = 1
) -> list[Row]:
    """Every shape on durafn, each common one on DBOS right after it with ``compare_dbos``;
    ``rounds`` times over, each engine's figure then the median round's, so a machine whose
    speed swings meanwhile slows both engines' rounds alike.
    """
    ours: dict[str, list[Result]] = {}
    theirs: dict[str, list[Result]] = {}
    common = common_shapes(quick)
    for round_ in range(rounds):
        for n, (name, scenario) in enumerate(scenarios(quick)):
            with durafn_store(storage, folder / f"{round_}-{n}-{name}.db") as url:
                for result in asyncio.run(run_embedded(url, scenario)):
                    ours.setdefault(result.shape, []).append(result)
            if compare_dbos and name in common:
                dbos_file = folder / f"{round_}-{n}-{name}-dbos.db"
                for result in compare.run_dbos_shape(name, storage, dbos_file, quick).values():
                    theirs.setdefault(result.shape, []).append(result)
        with durafn_store(storage, folder / f"{round_}-idle.db") as url:
            for result in idle_host(url, 100 if quick else 10_000):
                ours.setdefault(result.shape, []).append(result)
        http = folder / f"{round_}-http"
        http.mkdir()
        with durafn_store(storage, http / "http.db") as url:
            result = http_starts(http, url, 200 if quick else 3000)
            ours.setdefault(result.shape, []).append(result)
        with durafn_store(storage, folder / f"{round_}-floor.db") as url:
            for result in commit_floor(url, *latency_runs(quick)):
                ours.setdefault(result.shape, []).append(result)
    return [
        Row(median_round(results), median_round(theirs[shape]) if shape in theirs else None)
        for shape, results in ours.items()
    ]


def _rounds(text: str) -> int:
    """``--rounds``: a whole number from 1."""
    try:
        rounds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if rounds < 1:
        raise argparse.ArgumentTypeError(f"{rounds} rounds: give 1 or more")
    return rounds


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; 1 if one fails, 2 if the arguments cannot work (a ``--storage``
    that cannot be opened, a ``--json`` folder that does not exist, ``--compare-dbos`` without
    DBOS), found before anything runs.
    """
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument(
        "--storage",
        help="a store URL (default: a fresh SQLite file per shape); on PostgreSQL each shape "
        "runs in a fresh schema of that database",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--compare-dbos",
        action="store_true",
        help=f"also run each common shape on DBOS and print the ratios ({compare.INSTALL_HINT})",
    )
    parser.add_argument(
        "--rounds",
        type=_rounds,
        default=1,
        help="run every shape this many times, durafn and DBOS in turn, and report each "
        "engine's median round (default 1)",
    )
    args = parser.parse_args(argv)
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: the folder {args.json.parent} does not exist")
    dbos_version = compare.dbos_version() if args.compare_dbos else None
    if args.compare_dbos and dbos_version is None:
        print(
            "error: --compare-dbos needs DBOS, which is not installed; install it with "
            f"`{compare.INSTALL_HINT}` (DBOS {compare.DBOS_VERSION})",
            file=sys.stderr,
        )
        return 2
    try:
        with tempfile.TemporaryDirectory() as folder:
            check_storage(args.storage, Path(folder))
            rows = run(Path(folder), args.storage, args.quick, args.compare_dbos, args.rounds)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        # a storage that cannot be opened is a bad argument (2, as argparse's); a shape failed: 1
        return 2 if isinstance(exc, StorageError) else 1
    machine = describe_machine()
    header: dict[str, object] = {"machine": machine, "storage": describe_durafn(args.storage)}
    print(f"durafn benchmarks ({machine_line(machine)}; storage: {header['storage']})")
    if dbos_version is not None:
        dbos_storage = describe_dbos(args.storage)
        header["dbos"] = {"version": dbos_version, "storage": dbos_storage}
        print(f"compared with DBOS {dbos_version} on {dbos_storage}")
    print("\n".join(table(rows, compared=dbos_version is not None)))
    if args.json:
        args.json.write_text(json.dumps(payload(rows, header), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
