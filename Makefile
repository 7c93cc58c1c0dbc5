# Two entry points (see README): `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Debian packages the test suite drives as real clients (installed only when missing).
TEST_APT_PACKAGES ?= curl ca-certificates gpgv gnupg dpkg apt apt-utils nodejs
# Maven tests: mvn and a JDK (javac builds the test jars). Their build plugins come from the
# machine image's ~/.m2/repository (README, "Maven tests"): no Maven Central here.
TEST_APT_PACKAGES += maven openjdk-17-jdk-headless
# container images (tests/integration/test_oci_skopeo.py): skopeo, and CNCF distribution as upstream
TEST_APT_PACKAGES += skopeo docker-registry
# the web app's end-to-end tests (tests/integration/test_web_app.py): headless Chromium, driven
# by Playwright for Python pointed at /usr/bin/chromium (no browser download)
TEST_APT_PACKAGES += chromium
# JavaScript clients the npm tests drive (and node-semver, the reference for the version
# rules), pinned, installed from the npm registry into the git-ignored .npm-clients/.
NPM_CLIENTS ?= npm@11.19.1 pnpm@12.21.0 yarn@1.22.22 @yarnpkg/cli-dist@4.18.1 semver@7.8.5
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install install-test system-deps npm-clients lint pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

## Install Graft, create the demo organization (token printed once), serve on :8000.
run: install
	$(BIN)/graft init --demo
	$(BIN)/graft serve

system-deps:
	@missing=$$(for p in $(TEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

npm-clients: system-deps
	@stamp=.npm-clients/.installed; want="$(NPM_CLIENTS)"; \
	if [ "$$(cat $$stamp 2>/dev/null)" != "$$want" ]; then \
	  echo "installing npm clients: $$want"; \
	  mkdir -p .npm-clients && echo '{"private": true}' > .npm-clients/package.json && \
	  npm install --prefix .npm-clients --no-save --no-audit --no-fund --no-package-lock \
	    --ignore-scripts --loglevel=error $$want && echo "$$want" > $$stamp; \
	fi

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

pytest: install-test system-deps npm-clients
	$(BIN)/python -m pytest -q --durations=10

## Install everything the tests need, then lint, type-check and run the whole suite.
test: lint pytest

clean:
	rm -rf $(VENV) graft-data .pytest_cache .mypy_cache .ruff_cache .npm-clients
