#!/usr/bin/env bash
# Prints GVS's package import graph (GVS packages only, tests and test-only
# helpers left out) in the form docs/architecture.md shows it:
#   package: imported packages…
# Usage: scripts/importgraph.sh   (docs/architecture.md must match: a test checks)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
mod=$("$GO" list -m)
"$GO" list -f '{{.ImportPath}}:{{range .Imports}} {{.}}{{end}}' ./... |
	grep -v -e "^$mod/test/" -e "/internal/dptest:" -e "/internal/bgptest:" -e "/internal/testenv:" |
	sed "s|$mod/||g" |
	awk -F': ?' -v mod="$mod" '{
		out = $1 ":"
		n = split($2, deps, " ")
		for (i = 1; i <= n; i++) if (deps[i] !~ /\./ || index(deps[i], mod) == 1) {
			d = deps[i]; sub("^" mod "/", "", d)
			if (d ~ /^(api|bench|cmd|ctrlplane|dataplane|flowdir|header|internal|ipvs|nat|pktgen|session)(\/|$)/) out = out " " d
		}
		print out
	}' | sort
