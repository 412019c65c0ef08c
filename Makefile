# The two commands a newcomer needs: `make run` and `make test`. See README.md.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
HOTLINE := $(VENV)/bin/hotline
# The PostgreSQL server the second test pass uses (trust auth on dev machines and CI).
TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test venv lint typecheck test-sqlite test-postgres bench clean

$(UV):
	python3 -m pip install --user --quiet uv

venv: $(UV)
	$(UV) sync --frozen --all-groups

## Set everything up and run the hotline on embedded defaults (SQLite, dev Asterisk).
## The dev PBX needs root (chroot, mount); without root the web service runs alone.
run: venv
	$(HOTLINE) db upgrade
	$(HOTLINE) seed demo --if-empty
	@if [ "$$(id -u)" = 0 ]; then \
	  sh .ci/install-pbx.sh && $(HOTLINE) pbx up && \
	  echo "dev PBX up: register a softphone as 8001 at 127.0.0.1:5060" \
	       "(password: $(HOTLINE) pbx agent-secret 8001), call 12345 from the citizen trunk"; \
	else echo "not root: the dev PBX is not started (run make run as root for telephony)"; fi
	$(HOTLINE) serve

## Lint, type-check, then the whole suite on SQLite and again on PostgreSQL.
test: venv lint typecheck test-sqlite test-postgres

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check cases/migrations

typecheck:
	$(VENV)/bin/mypy hotline cases agent_ui agi transcription

test-sqlite:
	$(VENV)/bin/pytest -q

test-postgres:
	HOTLINE_TEST_DATABASE_URL=$(TEST_PG_URL) $(VENV)/bin/pytest -q -m "not pbx and not browser"

bench: venv
	$(VENV)/bin/python -m bench.kb_search
	$(VENV)/bin/python -m bench.case_insert

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
