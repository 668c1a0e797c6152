# The README's two commands: `make dev` runs the site, `make test` runs the whole test suite.
# Each sets itself up the first time (virtualenv, pip, npm) and skips that once it is done.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
NPM_INSTALLED := devidp/node_modules/.package-lock.json

.PHONY: dev test setup

dev: setup
	$(VENV)/bin/flask --app flask_app dev

# pytest's exit code 5 (no test collected) is a failure too.
test: setup
	@status=0; $(PYTHON) -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

setup: $(INSTALLED) $(NPM_INSTALLED)

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NPM_INSTALLED): devidp/package.json devidp/package-lock.json
	cd devidp && npm ci --no-audit --no-fund --loglevel=error
	touch $@
