#!/bin/sh
# Load on `myelin serve` (4 CPU jobs, 100 SSE clients, API calls); see bench/serve-load.py.
MYELIN_BINARY="${MYELIN_BINARY:-$(ls -t build*/myelin | head -1)}" exec /usr/bin/python3 "$(dirname "$0")/serve-load.py" "$@"
