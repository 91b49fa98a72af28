# Two commands on a fresh machine: `make run` and `make test`.
# Everything goes into .venv; system packages the tests need (Debian's chromium, dovecot-imapd)
# are installed by `make system-deps`, which `make test` calls.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/publisher publish
	$(BIN)/publisher run

system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -x /usr/sbin/dovecot || { \
	  echo "installing Debian's dovecot-imapd for the IMAP bounce-mailbox tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check publisher tests bench
	$(BIN)/ruff format --check publisher tests bench

typecheck: $(STAMP)
	$(BIN)/mypy publisher

unit: $(STAMP)
	$(BIN)/pytest

test: $(STAMP) system-deps lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/feeds.py
	$(BIN)/python bench/digests.py

clean:
	rm -rf $(VENV) var public .pytest_cache .mypy_cache .ruff_cache
