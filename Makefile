# The README's two commands: `make dev` runs the site, `make test` runs the whole test suite.
# Each sets itself up the first time (virtualenv, pip, npm) and skips that once it is done.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
NPM_INSTALLED := tools/devidp/node_modules/.package-lock.json
AXE_INSTALLED := tests/a11y/node_modules/.package-lock.json

.PHONY: dev test setup messages

dev: setup
	$(VENV)/bin/flask --app flask_app dev

# ruff (ruff.toml) and mypy --strict on the sign-in unit (mypy.ini) first; pytest's exit code 5 (no test
# collected) is a failure too.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	@status=0; $(PYTHON) -m pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

setup: $(INSTALLED) $(NPM_INSTALLED) $(AXE_INSTALLED)

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NPM_INSTALLED): tools/devidp/package.json tools/devidp/package-lock.json
	cd tools/devidp && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# axe-core, which the browser tests inject into every page.
$(AXE_INSTALLED): tests/a11y/package.json tests/a11y/package-lock.json
	cd tests/a11y && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# After changing a page or a message: extract them again (babel.cfg) and update translations/*/messages.po;
# then fill in every new msgstr (tests/test_i18n.py fails on an empty or fuzzy one). The site compiles the
# catalogs itself when it starts (languages.py), so there is no .mo to keep up to date.
messages: $(INSTALLED)
	$(VENV)/bin/pybabel -q extract -F babel.cfg -k lazy_gettext --no-location --no-wrap \
		--ignore-dirs='.* _* node_modules tests bench tools migrations instance test-artifacts' -o $(VENV)/messages.pot .
	$(VENV)/bin/pybabel -q update -N --ignore-obsolete --no-wrap -i $(VENV)/messages.pot -d translations
