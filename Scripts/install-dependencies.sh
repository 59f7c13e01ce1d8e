#!/bin/sh
# Installs the Debian packages listed in Tests/packages/*.txt (comments and blank lines ignored).
# Needs root. Skips apt entirely when everything is already installed.
set -eu
cd "$(dirname "$0")/.."
packages=$(cat Tests/packages/*.txt | sed 's/#.*//' | tr -s ' \n' '\n' | grep -v '^$' | sort -u)
missing=""
for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
