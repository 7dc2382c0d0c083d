#!/usr/bin/env bash
# Lines of code of each FILE, as the README's comparisons count them: lines that are not
# blank and do not start with `//` once trimmed (comments and doc comments are not code).
#
#   bench/loc.sh FILE...    # prints `FILE N` per file
set -euo pipefail
if [ $# -eq 0 ]; then
    echo "usage: $0 FILE..." >&2
    exit 2
fi
for file in "$@"; do
    count=$(awk '{ sub(/^[ \t]+/, "") } $0 != "" && substr($0, 1, 2) != "//" { n++ } END { print n + 0 }' "$file")
    echo "$file $count"
done
