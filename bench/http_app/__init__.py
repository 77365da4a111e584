"""The app of the "HTTP starts" shape (bench/http_starts.py)."""
