#!/usr/bin/env bash
# Rewrites the import-graph block of docs/architecture.md from the code.
set -euo pipefail
cd "$(dirname "$0")/.."
graph=$(scripts/importgraph.sh)
awk -v graph="$graph" '
	/<!-- importgraph:begin -->/ { print; print "```"; print graph; print "```"; skip = 1; next }
	/<!-- importgraph:end -->/ { skip = 0 }
	!skip { print }
' docs/architecture.md > docs/architecture.md.new
mv docs/architecture.md.new docs/architecture.md
