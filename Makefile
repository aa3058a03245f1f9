# The two commands: `make run` (the whole stack on loopback) and `make test`.
PYTHON ?= python3
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
UV_VERSION := 0.13.8
NEXT_VERSION := 3.13
NEXT_VENV ?= .venv-next
COMPAT_VENV ?= .venv-compat
# The pins a venv is made from: requirements-compat.lock for the compat run.
LOCK ?= requirements.lock
PYTHON_NEXT ?= $(shell scripts/find-python $(NEXT_VERSION))
# The database of each half (TEST_DATABASE_URL; empty: SQLite). The LTS half,
# which also lints, type-checks and measures coverage, runs on SQLite, the
# default of the run command, needing no server; the newest Python and Django
# run on PostgreSQL, so each database meets the whole suite in every `make
# test` at the cost of two runs, not four. Either half takes either database:
# `make test-lts LTS_DATABASE_URL=$(POSTGRES_URL)`, `make test-next NEXT_DATABASE_URL=`.
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres
LTS_DATABASE_URL ?=
NEXT_DATABASE_URL ?= $(POSTGRES_URL)
# What `npm ci` installs for the browser tests' accessibility checks.
AXE := tests/browser/node_modules/axe-core/axe.min.js

.PHONY: run test test-quick test-lts test-next test-compat venv nginx test-system postgres lock lint clean bench bench-smoke timing-probe crafted-uploads soak

run: venv nginx
	$(VENV_PYTHON) -m gateway.stack

# Lint, types, then every test (the real-stack ones included) with branch
# coverage on Python 3.11 and Django 5.2 LTS, on SQLite; and the suite again
# on Python 3.13 and Django 6.x, the newest pair we support, on PostgreSQL.
# The two halves run at once: each spends much of its time waiting on the
# servers it drives (nginx, uvicorn, Chromium, the store, the clock), so on
# two cores both take little more than one. Each half's output is printed
# whole when it ends; `make test-lts` or `make test-next` runs one alone.
#
# Then the in-process tests once more on Django 5.2 LTS and the newest Python,
# the pair of a site that stays on the LTS (`make test-compat`, a few minutes).
test: postgres test-system
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-lts test-next
	@$(MAKE) --no-print-directory test-compat

# The inner loop: every test that starts no real server (no nginx, uvicorn or
# Chromium), on the LTS venv.
test-quick: venv
	$(VENV_PYTHON) -m pytest -m "not stack and not browser" $(PYTEST_ARGS)

test-lts: venv test-system lint
	@scripts/ensure-postgres '$(LTS_DATABASE_URL)'
	$(VENV)/bin/mypy protected_media
	TEST_DATABASE_URL='$(LTS_DATABASE_URL)' $(VENV_PYTHON) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

test-next: test-system
	@if [ -z "$(PYTHON_NEXT)" ]; then \
		echo "[gateway] Python $(NEXT_VERSION) was not found (PATH or pyenv): the Django 6 run cannot happen. Install it, e.g. 'pyenv install $(NEXT_VERSION)'." >&2; \
		exit 1; \
	fi
	@$(MAKE) --no-print-directory venv VENV=$(NEXT_VENV) PYTHON=$(PYTHON_NEXT)
	@scripts/ensure-postgres '$(NEXT_DATABASE_URL)'
	$(NEXT_VENV)/bin/python -c "import django, sys; print(f'[gateway] Python {sys.version.split()[0]}, Django {django.get_version()}')"
	TEST_DATABASE_URL='$(NEXT_DATABASE_URL)' $(NEXT_VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# Every test that starts no real server, on Python $(NEXT_VERSION) with Django
# 5.2 LTS (requirements-compat.lock), on SQLite.
test-compat:
	@if [ -z "$(PYTHON_NEXT)" ]; then \
		echo "[gateway] Python $(NEXT_VERSION) was not found (PATH or pyenv): the Django 5.2 run on it cannot happen." >&2; \
		exit 1; \
	fi
	@$(MAKE) --no-print-directory venv VENV=$(COMPAT_VENV) PYTHON=$(PYTHON_NEXT) LOCK=requirements-compat.lock
	$(COMPAT_VENV)/bin/python -c "import django, sys; print(f'[gateway] Python {sys.version.split()[0]}, Django {django.get_version()}')"
	TEST_DATABASE_URL= $(COMPAT_VENV)/bin/python -m pytest -p no:cacheprovider -m "not stack and not browser" $(PYTEST_ARGS)

venv: $(VENV)/.synced

# Installs exactly what the lock pins (hashes checked) into the venv.
$(VENV)/.synced: $(LOCK)
	@test -x $(VENV_PYTHON) || $(PYTHON) -m venv $(VENV)
	@$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip sync --quiet --python $(VENV_PYTHON) --require-hashes $(LOCK)
	@touch $@

nginx:
	@scripts/ensure-debian-packages nginx:nginx

# The real-stack tests need nginx, the deploy test openssl, the browser tests
# Debian's Chromium (Playwright drives it; it never downloads a browser) and
# axe-core from npm (the accessibility checks, pinned in
# tests/browser/package-lock.json), the benchmark's smoke test wrk: installed
# here, once, before the halves start.
test-system: $(AXE)
	@scripts/ensure-debian-packages nginx:nginx openssl:openssl chromium:chromium wrk:wrk

$(AXE): tests/browser/package-lock.json
	@scripts/ensure-debian-packages npm:npm
	cd tests/browser && npm ci --no-audit --no-fund
	@touch $@

# Starts the local PostgreSQL when a half runs on it and it is stopped, or
# says why it cannot: before either half, so `make test` fails early.
postgres:
	@scripts/ensure-postgres '$(LTS_DATABASE_URL)' '$(NEXT_DATABASE_URL)'

# Re-resolve the pins after changing dependencies in pyproject.toml.
# requirements.lock serves the LTS and the newest halves (Django 6.x on
# 3.12+: constraints/newest.txt); requirements-compat.lock, Django 5.2 LTS on
# the newest Python (constraints/compat.txt). The package itself allows both.
LOCK_GROUPS := --extra metrics --extra s3 --extra gateway --group test --group dev --group bench --group docs
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		-c constraints/newest.txt $(LOCK_GROUPS) --generate-hashes --quiet -o requirements.lock
	@# The same pins as requirements.lock for everything but Django.
	@mkdir -p var && grep -E '^[a-z0-9_.-]+==' requirements.lock | sed 's/ *\\$$//' \
		| grep -v '^django==' > var/lock-pins.txt
	$(VENV)/bin/uv pip compile pyproject.toml --python-version $(NEXT_VERSION) \
		-c var/lock-pins.txt -c constraints/compat.txt $(LOCK_GROUPS) --generate-hashes --quiet -o requirements-compat.lock

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# What the permission check costs next to nginx sending the bytes: one run on
# this machine, figures and ratios printed, raw JSON and a chart in var/bench/.
bench: venv nginx
	@scripts/ensure-postgres '$(POSTGRES_URL)'
	$(VENV_PYTHON) -m bench.bench $(BENCH_ARGS)

# The same code paths in a few seconds per case, as CI runs them.
bench-smoke: venv nginx
	@scripts/ensure-postgres '$(POSTGRES_URL)'
	$(VENV_PYTHON) -m bench.bench --smoke $(BENCH_ARGS)

# Whether a refusal's time tells that a file exists: another user's file and
# random keys, interleaved, through both entry points; medians and
# P(forbidden slower than missing) printed (target 0.40-0.60, medians within 5 %).
timing-probe: venv nginx
	$(VENV_PYTHON) -m bench.existence_timing $(PROBE_ARGS)

# What a crafted upload (one per format and trick) costs the worker that
# inspects it: answer, wall time, CPU seconds and RSS growth per upload, and
# another user's p99 during a flood of 8 (docs/performance.md, "Crafted uploads").
crafted-uploads: venv nginx
	$(VENV_PYTHON) -m bench.crafted_uploads $(CRAFTED_ARGS)

# 256 clients mixing static files, media (their own and refused), and uploads
# against two uvicorn workers on PostgreSQL for five minutes: no 5xx, every
# file intact, memory flat. Figures printed, JSON in var/soak/.
SOAK_ARGS ?= --duration 300 --clients 256
soak: venv nginx
	@scripts/ensure-postgres '$(POSTGRES_URL)'
	POSTGRES_URL='$(POSTGRES_URL)' $(VENV_PYTHON) -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(NEXT_VENV) var .pytest_cache .hypothesis
