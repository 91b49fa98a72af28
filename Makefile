# Two commands on a fresh machine: `make run` and `make test`.
# Everything goes into .venv; system packages the tests need (Debian's chromium,
# spamassassin, libmail-dkim-perl, dovecot-imapd and nginx-light) are installed by
# `make system-deps`, which `make test` calls; `make bench` also installs wrk (bench-deps).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit system-deps bench-deps install-debian bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/publisher publish
	$(BIN)/publisher run

# Debian packages the tests need, each installed only when missing. While they install,
# a policy-rc.d keeps the ones that ship a daemon (dovecot, nginx) from starting it:
# the tests start their own, on their own ports, with throw-away configs.
SYSTEM_PACKAGES := chromium spamassassin libmail-dkim-perl dovecot-imapd nginx-light

system-deps:
	@$(MAKE) --no-print-directory install-debian PACKAGES="$(SYSTEM_PACKAGES)" WHY="the tests"

# Debian packages only the benchmarks need: wrk, the HTTP load generator of bench/serve.py
# (which also runs nginx, installed by system-deps).
BENCH_PACKAGES := wrk

bench-deps: system-deps
	@$(MAKE) --no-print-directory install-debian PACKAGES="$(BENCH_PACKAGES)" WHY="the benchmarks"

# Install the missing ones of $(PACKAGES), with a policy-rc.d that keeps daemons stopped.
install-debian:
	@missing=$$(for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for $(WHY):" $$missing; \
	  own_policy=0; [ -e /usr/sbin/policy-rc.d ] || { own_policy=1; \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    -o DPkg::Lock::Timeout=600 $$missing >/dev/null; status=$$?; \
	  [ $$own_policy = 0 ] || rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check publisher tests bench
	$(BIN)/ruff format --check publisher tests bench

typecheck: $(STAMP)
	$(BIN)/mypy publisher bench

unit: $(STAMP)
	$(BIN)/pytest

test: $(STAMP) system-deps lint typecheck unit

# The PostgreSQL benches (import, workers) use the local server of the tests
# (postgresql://postgres@127.0.0.1:5432/test; each script's --postgres changes it).
bench: $(STAMP) bench-deps
	$(BIN)/python bench/feeds.py
	$(BIN)/python bench/digests.py
	$(BIN)/python bench/dkim_signing.py
	$(BIN)/python bench/archive.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/workers.py
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) var public .pytest_cache .mypy_cache .ruff_cache
