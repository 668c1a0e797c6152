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

# After changing a page or a message: extract them again (babel.cfg) and update the site's catalogs
# (website/translations/*/LC_MESSAGES/messages.po) and the sign-in unit's, in its own domain
# (flask_logto/translations/*/LC_MESSAGES/flask_logto.po); then fill in every new msgstr (tests/test_i18n.py
# fails on an empty or fuzzy one). Both are compiled when they are first used, so there is no .mo to keep.
messages: $(INSTALLED)
	$(VENV)/bin/pybabel -q extract -F babel.cfg -k lazy_gettext --no-location --no-wrap \
		--ignore-dirs='.* _* node_modules tests bench tools flask_logto migrations instance test-artifacts' -o $(VENV)/messages.pot .
	$(VENV)/bin/pybabel -q update -N --ignore-obsolete --no-wrap -i $(VENV)/messages.pot -d website/translations
	$(VENV)/bin/pybabel -q extract -F babel.cfg -k logto_gettext --no-location --no-wrap --ignore-dirs='.* _*' \
		-o $(VENV)/flask_logto.pot flask_logto
	$(VENV)/bin/pybabel -q update -N --ignore-obsolete --no-wrap -D flask_logto -i $(VENV)/flask_logto.pot -d flask_logto/translations
