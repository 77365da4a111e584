"""The benchmark runner works (a small run); real numbers come from `python -m bench`."""

import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy
from pgstore import store_connection

from bench.floor import commit_floor
from bench.idle import idle_host
from bench.measure import BenchError, Result, median_round
from bench.stores import durafn_store

ROOT = Path(__file__).resolve().parent.parent


def _bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bench_quick_run_prints_every_shape(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = _bench("--json", str(out))
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
    [idle] = [r for r in results if r["shape"] == "100 idle orchestrations"]
    assert idle["unit"] == "MB RSS" and idle["detail"] == "peak of a host process of its own"
    floor = {r["shape"]: r["value"] for r in results if r["shape"].startswith("floor: ")}
    p50, p99 = floor["floor: 4 bare commits p50"], floor["floor: 4 bare commits p99"]
    assert 0 < p50 <= p99


def test_the_commit_floor_leaves_a_given_sqlite_store_as_it_was(tmp_path: Path) -> None:
    store = tmp_path / "given.db"
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("CREATE TABLE kept (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO kept VALUES (7)")
    results = commit_floor(f"sqlite:///{store}?synchronous=FULL", count=20, warm_up=2)
    assert [r.shape for r in results] == [
        "floor: 4 bare commits p50",
        "floor: 4 bare commits p99",
    ]
    assert all(r.unit == "ms" and r.detail.endswith("20 runs after 2 unmeasured") for r in results)
    with contextlib.closing(sqlite3.connect(store)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert tables == [("kept",)]
        assert conn.execute("SELECT id FROM kept").fetchall() == [(7,)]


def test_a_shape_whose_process_fails_names_itself_and_shows_why() -> None:
    with pytest.raises(BenchError) as failed:
        idle_host("bogus://somewhere", 10)
    assert str(failed.value).startswith("the idle shape exited 1:\n")
    # the child's own error, from its stderr
    assert "unsupported storage URL scheme 'bogus://'" in str(failed.value)


def test_rounds_report_each_shape_once_as_its_median_round(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = _bench("--rounds", "3", "--json", str(out))
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    shapes = [r["shape"] for r in results]
    assert len(shapes) == len(set(shapes)) and "HTTP starts" in shapes
    assert all(r["detail"].endswith("median of 3 rounds") and r["value"] > 0 for r in results)
    [growth] = [r["detail"] for r in results if r["shape"] == "chain of 200"]
    assert growth.startswith("x") and " of 100; " in growth  # that round's own detail


def test_the_median_round_is_a_round_that_ran() -> None:
    rounds = [Result("chain of 200", v, "s", f"round {n}") for n, v in enumerate([0.5, 0.1, 0.3])]
    assert median_round(rounds) == Result("chain of 200", 0.3, "s", "round 2; median of 3 rounds")
    # of an even count, the lower middle one: never an average no round measured
    assert median_round(rounds[:2]).value == 0.1
    assert median_round(rounds[:1]) == rounds[0]


@pytest.mark.parametrize("rounds", ["0", "-1", "two"])
def test_rounds_that_are_not_a_count_fail_before_any_shape_runs(rounds: str) -> None:
    done = _bench("--rounds", rounds, timeout=60)
    assert done.returncode == 2
    assert "argument --rounds" in done.stderr
    assert "3-step orchestrations" not in done.stdout


@pytest.mark.postgres
def test_bench_quick_run_on_postgres_leaves_no_schema_behind(
    postgres_admin: sqlalchemy.Engine,
) -> None:
    done = _bench("--storage", postgres_admin.url.render_as_string(hide_password=False))
    assert done.returncode == 0, done.stderr
    assert "schema durafn_bench fresh per shape" in done.stdout
    assert "chain of 200" in done.stdout
    assert "HTTP starts" in done.stdout
    assert "floor: 4 bare commits p99" in done.stdout
    with postgres_admin.connect() as conn:
        left = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'durafn_bench'"
        ).scalar()
    assert left == 0


@pytest.mark.postgres
def test_a_postgres_storage_keeps_its_own_options(
    postgres_admin: sqlalchemy.Engine, tmp_path: Path
) -> None:
    url = postgres_admin.url.update_query_dict({"options": "-cstatement_timeout=54321"})
    storage = url.render_as_string(hide_password=False)
    with durafn_store(storage, tmp_path / "unused.db") as shape, store_connection(shape) as conn:
        shown = [
            conn.conn.execute(query).fetchone()
            for query in ("SHOW statement_timeout", "SELECT current_schema()")
        ]
    assert shown == [("54321ms",), ("durafn_bench",)]


@pytest.mark.parametrize(
    ("storage", "problem"),
    [
        ("bogus://somewhere", "unsupported storage URL scheme 'bogus://'"),
        ("postgresql+psycopg://someone:secret@127.0.0.1:1/db", "Connection refused"),
        (
            "sqlite:///{tmp}/bench.db?synchronous=SOMETIMES",
            "synchronous=SOMETIMES is not supported",
        ),
    ],
)
def test_a_storage_that_cannot_work_fails_before_any_shape_runs(storage: str, problem: str) -> None:
    done = _bench("--storage", storage, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: --storage ")
    assert problem in done.stderr
    assert "Traceback" not in done.stderr
    assert "secret" not in done.stderr  # the password is not echoed
    assert "3-step orchestrations" not in done.stdout


def test_a_json_file_in_a_missing_folder_fails_before_any_shape_runs(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "bench.json"
    done = _bench("--json", str(out), timeout=60)
    assert done.returncode == 2
    assert f"the folder {out.parent} does not exist" in done.stderr
    assert "3-step orchestrations" not in done.stdout
    assert not out.parent.exists()
