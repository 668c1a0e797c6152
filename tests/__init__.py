"""The test suite: `make test` (or `pytest`) runs it; shared servers and helpers live in conftest.py, harness.py,
servers.py, redis_server.py and postgres.py."""
