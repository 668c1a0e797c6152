"""The site's load benchmark (`python bench/bench.py`); not a test."""
