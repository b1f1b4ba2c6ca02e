#!/bin/sh
# check-style.sh - the mechanical parts of STYLE.md section 7: no trailing
# white space, tabs for indentation, no line over 100 columns, no '//'
# comments in C (a line whose length comes from a long string literal is
# allowed past 100: format strings are not split); and the layers of
# STYLE.md section 1: lib/ includes only lib/, kernels/ and evict/ only
# lib/ (and themselves), tiers/ only lib/ and kernels/, client/ never
# kvstore/. Prints each offence as FILE:LINE: what; exits 1 if any.
set -u
files=$(git ls-files '*.c' '*.h' '*.cu' 2>/dev/null || find . -name '*.[ch]' -o -name '*.cu')
[ -n "$files" ] || exit 0
# shellcheck disable=SC2086
layers_ok=0
awk '
	FNR == 1 { split(FILENAME, p, "/"); dir = p[1] }
	/^#include "/ {
		inc = $2; gsub(/"/, "", inc); split(inc, q, "/"); to = q[1]
		ok = 1
		if (dir == "lib") ok = (to == "lib")
		else if (dir == "kernels" || dir == "evict") ok = (to == "lib" || to == dir)
		else if (dir == "tiers") ok = (to == "lib" || to == "kernels" || to == "tiers")
		else if (dir == "client") ok = (to != "kvstore")
		if (!ok) { print FILENAME ":" FNR ": " dir "/ includes " inc; bad = 1 }
	}
	END { exit bad }
' $files || layers_ok=1
awk '
	/[ \t]+$/ { print FILENAME ":" FNR ": trailing white space"; bad = 1 }
	/^ +[^ *]/ { print FILENAME ":" FNR ": indented with spaces"; bad = 1 }
	{
		line = $0; cols = 0
		for (i = 1; i <= length(line); i++)
			cols = substr(line, i, 1) == "\t" ? cols + 8 - cols % 8 : cols + 1
		# A long format string is not split (it stays greppable).
		first = index(line, "\""); last = 0
		for (i = length(line); i > first && !last; i--)
			if (substr(line, i, 1) == "\"")
				last = i
		if (cols > 100 && (!first || last - first < 40)) {
			print FILENAME ":" FNR ": " cols " columns"; bad = 1
		}
	}
	/^[^"]*[^:"]\/\/ / { print FILENAME ":" FNR ": // comment"; bad = 1 }
	END { exit bad }
' $files || exit 1
exit $layers_ok
