#!/usr/bin/env bash
# The README's demo command: installs what is needed, builds, then runs 3 hosts with weftd in a namespace lab.
# Arguments go to the demo: --backend vxlan|host-gw, --no-iperf, --hold (see demo/demo.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root to create network namespaces; run: sudo scripts/demo.sh" >&2
  exit 2
fi
# WEFT_DEMO_SKIP_SETUP=1 reruns the demo on an existing build without reinstalling.
if [ "${WEFT_DEMO_SKIP_SETUP:-}" != "1" ]; then
  scripts/setup.sh
fi
exec node dist/demo/demo.js "$@"
