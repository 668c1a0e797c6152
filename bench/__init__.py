"""The site's load benchmark (`python -m bench.bench`); not a test."""
