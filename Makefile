# Two commands on a fresh machine: `make run` and `make test`.
# Everything goes into .venv; system packages the tests need (Debian's chromium,
# spamassassin, libmail-dkim-perl, dovecot-imapd and nginx-light) are installed by
# `make system-deps`, which `make test` calls.

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
	@# nginx runs only inside tests (deploy/nginx-publisher.conf); policy-rc.d stops the
	@# package from starting a system nginx on port 80 while it installs.
	@test -x /usr/sbin/nginx || { \
	  echo "installing Debian's nginx-light for the deploy tests"; \
	  had_policy=0; test -e /usr/sbin/policy-rc.d && had_policy=1; \
	  [ $$had_policy = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
	  { apt-get install -y -qq nginx-light >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }; }; \
	  status=$$?; [ $$had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d; exit $$status; }
	@{ command -v spamassassin >/dev/null 2>&1 && dpkg -s libmail-dkim-perl >/dev/null 2>&1; } || { \
	  echo "installing Debian's spamassassin and libmail-dkim-perl for the deliverability tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 spamassassin libmail-dkim-perl >/dev/null; }

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
