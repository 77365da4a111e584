"""``python -m bench [--quick] [--storage URL] [--json FILE]``: run the shapes, print a table."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
from pathlib import Path

from bench.shapes import as_dict, run_embedded, scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--storage", help="a store URL (default: a fresh SQLite file per shape)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for n, (name, scenario) in enumerate(scenarios(args.quick)):
            db = Path(folder) / f"{n}-{name}.db"
            results += asyncio.run(run_embedded(db, scenario, args.storage))
    machine = (
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    storage = args.storage or "sqlite, WAL, synchronous=NORMAL"
    print(f"durafn benchmarks ({machine}; storage: {storage})")
    width = max(len(r.shape) for r in results)
    for r in results:
        print(f"  {r.shape:<{width}}  {r.value:>10.2f} {r.unit:<8} {r.detail}")
    payload = {"machine": machine, "results": [as_dict(r) for r in results]}
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
