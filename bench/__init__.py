"""durafn's benchmarks: ``python -m bench`` (see README, "Performance")."""
