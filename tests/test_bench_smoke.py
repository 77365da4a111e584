"""The benchmark runner works (a small run); real numbers come from `python -m bench`."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_run_prints_every_shape(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    shapes = [r["shape"] for r in results]
    assert shapes[:3] == ["3-step orchestrations", "latency p50", "latency p99"]
    assert "fan-out/fan-in of 100" in shapes
    assert any(s.startswith("replay of") for s in shapes)
    assert all(r["value"] > 0 for r in results)
    assert "3-step orchestrations" in done.stdout
    # a real `durafn start` answered every POST with 202 (a non-202 fails the run)
    http = [r for r in results if r["shape"] == "HTTP starts"]
    assert len(http) == 1
    assert http[0]["unit"] == "req/s"
    assert http[0]["value"] > 0
    assert "HTTP starts" in done.stdout
