# The two commands: `make run` (the whole stack on loopback) and `make test`.
PYTHON ?= python3
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
UV_VERSION := 0.13.8

.PHONY: run test venv nginx lock lint clean

run: venv nginx
	$(VENV_PYTHON) -m gateway.stack

# Lint, types, then every test (the real-stack ones included) with branch coverage.
test: venv nginx lint
	$(VENV)/bin/mypy protected_media
	$(VENV_PYTHON) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

venv: $(VENV)/.synced

# Installs exactly what requirements.lock pins (hashes checked) into .venv.
$(VENV)/.synced: requirements.lock
	@test -x $(VENV_PYTHON) || $(PYTHON) -m venv $(VENV)
	@$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip sync --quiet --python $(VENV_PYTHON) --require-hashes requirements.lock
	@touch $@

nginx:
	@scripts/ensure-nginx

# Re-resolve the pins after changing dependencies in pyproject.toml.
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--extra gateway --group test --group dev --generate-hashes --quiet -o requirements.lock

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
