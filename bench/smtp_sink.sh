#!/usr/bin/env bash
# Print the path of Postfix's smtp-sink, fetching it into bench/.cache/ when missing.
#
# Why: the transport benchmark needs a fast, dumb SMTP server that is not written in
# Python (an aiosmtpd sink would be the bottleneck). smtp-sink is that server, but it
# ships inside the postfix package, and installing postfix would start an MTA on this
# machine. So the .deb is downloaded and unpacked, never installed.
#
# It needs Postfix's private libraries; with --env a second line gives the variable:
#   LD_LIBRARY_PATH=<cache>/root/usr/lib/postfix <path> -u nobody 127.0.0.1:PORT 256
set -euo pipefail

cache="$(cd "$(dirname "$0")" && pwd)/.cache"
root="$cache/root"
sink="$root/usr/sbin/smtp-sink"

if [[ ! -x "$sink" ]]; then
  mkdir -p "$cache"
  cd "$cache"
  rm -f postfix_*.deb
  if ! apt-get download postfix >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get download postfix >/dev/null
  fi
  dpkg -x postfix_*.deb "$root"
  rm -f postfix_*.deb
fi

echo "$sink"
if [[ "${1:-}" == "--env" ]]; then
  echo "LD_LIBRARY_PATH=$root/usr/lib/postfix"
fi
