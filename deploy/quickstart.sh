#!/bin/sh
# quickstart.sh -- on a fresh Debian 12 machine: install what is needed,
# build, and probe the domains given (or print the usage).
set -eu
cd "$(dirname "$0")/.."
sh deploy/install-deps.sh
make
if [ $# -eq 0 ]; then
	echo "built bin/mtasts-agent; try: bin/mtasts-agent probe example.org"
	exit 0
fi
exec bin/mtasts-agent probe "$@"
