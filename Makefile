# `make demo` and `make test` are all a fresh clone needs: Python 3.11+ and pip.
# uv comes from the package index when it is not already on PATH.

SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .venv-tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
VENV := .venv
RUN := $(UV) run --no-sync
PACKAGES := http uwsgi core workers asgi dirty

.PHONY: demo test sync lint imports check-release pytest test-isolated test-pythons build bench-parser bench-uwsgi clean system-tools docs release

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv

sync: $(UV)
	$(UV) sync --quiet --all-packages --all-extras

# The Celery-alternative example (examples/celery_alternative/README.md): a FastAPI
# app on two ASGI workers with four dirty apps, at http://127.0.0.1:8000/.
demo: sync
	$(RUN) unicorn -c examples/celery_alternative/unicorn.conf.py

test: sync lint imports check-release pytest test-isolated test-pythons

lint: sync
	$(RUN) ruff check .
	$(RUN) ruff format --check .

# The design's import rules, kept in the repository (tools/check_imports.py), and
# the shared copy beside the checkout when there is one.
imports:
	$(PYTHON) tools/check_imports.py
	@if [ -f ../shared/tools/check_imports.py ]; then $(PYTHON) ../shared/tools/check_imports.py; fi

# Every package releasable: a package changed since its last tag has an
# Unreleased changelog entry, versions agree, our ranges admit our versions.
check-release: sync
	$(RUN) python tools/check_release.py

# The documentation site (mkdocs.yml) into site/; any warning fails the build:
# a page missing from the nav, a broken link or anchor.
docs: sync
	NO_MKDOCS_2_WARNING=1 $(RUN) mkdocs build --strict --site-dir site

# make release PKG=http BUMP=minor: bump, move the changelog's Unreleased
# entries, build and twine-check sdist and wheel, the isolated-wheel tests,
# commit and tag unicorn-http-vX.Y.Z; nothing is uploaded (docs/releasing.md).
# PKG: http uwsgi core workers asgi dirty, or unicorn (the meta-package).
release: sync
	@if [ -z "$(PKG)" ] || [ -z "$(BUMP)" ]; then \
	  echo "usage: make release PKG=http BUMP=minor (PKG: $(PACKAGES) unicorn; BUMP: major, minor, patch or X.Y.Z)"; exit 2; fi
	UV=$(UV) $(RUN) python tools/release.py $(PKG) $(BUMP)

# Real peers some tests drive, from Debian's packages when missing: nginx (uwsgi_pass
# and proxy_pass), wrk (the chaos test), nghttp2-client (HTTP/2: nghttp, h2load).
# A failed install is reported, not fatal: the tests that need the tool say so.
SYSTEM_TOOLS := nginx:nginx wrk:wrk nghttp:nghttp2-client h2load:nghttp2-client
system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null 2>&1 \
	      || echo "system-tools: could not install$$missing; the tests that need them will say so"; \
	  else echo "system-tools: missing$$missing (install them to run every test)"; fi; \
	fi

pytest: sync system-tools
	$(RUN) pytest -q

# Each package, built as its own wheel, installed in a venv with nothing of
# ours but itself and its declared dependencies, passes its own tests.
test-isolated: $(UV)
	@set -e; for p in $(PACKAGES); do UV=$(UV) bash .ci/isolated.sh $$p; done

# The parser and the ASGI worker under the other Pythons this machine has
# (eager start differs from 3.12 on, ssl from 3.13); absent ones are skipped.
OTHER_PYTHONS ?= python3.12 python3.13
test-pythons: $(UV)
	@set -e; for py in $(OTHER_PYTHONS); do UV=$(UV) bash .ci/other_python.sh $$py; done

build: $(UV)
	@for p in $(PACKAGES); do $(UV) build --quiet --package unicorn-$$p --out-dir dist; done
	$(UV) build --quiet --package unicorn --out-dir dist

bench-parser: sync
	$(RUN) python benchmarks/parser/bench_parser.py

# nginx -> unicorn (uwsgi) vs nginx -> uWSGI vs nginx -> gunicorn (benchmarks/uwsgi); needs wrk.
bench-uwsgi: sync system-tools
	$(RUN) python benchmarks/uwsgi/bench_uwsgi.py

clean:
	rm -rf dist build site .venv-isolated .venv-python3.* .pytest_cache .ruff_cache
