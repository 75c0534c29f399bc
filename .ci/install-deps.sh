#!/bin/sh
# install-deps.sh -- install everything reqonc's build and tests need on
# Debian 12 (or Ubuntu 22.04+).  Works as root, or through sudo.
#
#   sudo sh .ci/install-deps.sh        (or as root: sh .ci/install-deps.sh)
set -eu
PKGS="bison flex make gcc pkg-config libcurl4-openssl-dev libjansson-dev
libmicrohttpd-dev python3 ca-certificates tzdata systemd"

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo > /dev/null 2>&1; then
  SUDO="sudo"
else
  echo "install-deps.sh: run as root or install sudo" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2086  # word splitting of the package list is wanted
$SUDO apt-get install -y --no-install-recommends $PKGS
