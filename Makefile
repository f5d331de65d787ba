# The two commands of the README: `make start` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
CHROMIUM ?= /usr/bin/chromium
# daphne caps the websocket messages it sends, not only those it receives, at this size
# (1 MiB by default). A snapshot stays under 512 KiB, but one `message` frame carries a
# whole reply or tool result: 16 MiB, uvicorn's cap on incoming messages (it caps nothing
# it sends).
WS_MAX_MESSAGE_BYTES ?= 16777216
# Test processes side by side (pytest-xdist), one per CPU by default; 0 runs every test in
# pytest's own process. Modules whose tests share one server carry an xdist_group mark.
# --no-loadscope-reorder: work goes out in collection order, which puts the browser tests
# last (tests/e2e/conftest.py): in a process, no asyncio test may follow Playwright's.
TEST_WORKERS ?= auto

.PHONY: start test install install-dev chromium

# Slow clients: daphne has no option for its HTTP idle timeout; the app sets it from
# HTTP_IDLE_TIMEOUT_SECONDS (chatproject/connections.py).
start: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py ensure_demo_user
	@echo "Open http://$(HOST):$(PORT)/"
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) --websocket-max-message-size $(WS_MAX_MESSAGE_BYTES) \
		chatproject.asgi:application

test: install-dev chromium
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

# Browser tests drive Debian's Chromium package, never a downloaded browser build.
chromium:
	@test -x $(CHROMIUM) || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }
