#!/usr/bin/env bash
# failsummary.sh LOG: after a failed `go test`, repeat each failing test's
# first lines (its failure message comes before the server logs a test
# dumps when it fails) and every panic, so that the end of a long CI log
# says what failed and why.
set -u
log=${1:?usage: failsummary.sh LOG}
echo
echo "=== failure summary (the first lines of each failing test; the whole output is above) ==="
awk '
	function cut(s) { return length(s) > 400 ? substr(s, 1, 400) "…" : s }
	/^[ \t]*--- FAIL:/ { n = 8; print ""; print cut($0); next }
	/^panic:|^fatal error:/ { n = 10; print ""; print cut($0); next }
	/^(=== |--- |ok |FAIL)/ { n = 0 }
	n > 0 { print cut($0); n-- }
	/^FAIL\t/ { fails[++k] = $0 }
	END { print ""; for (i = 1; i <= k; i++) print fails[i] }
' "$log"
