#!/bin/sh
# Benchmarks/probes/dirty-scan/run.sh [REV] [ITERATIONS]
# The dirty-run scan alone (DirtyBitmap.runs, DirtyRunPacking.packBitmap with and without
# zeroing) of REV (default main) against the working tree's, alternated call by call in one
# process: the four self-contained files of Sources/IommufdContract that hold them are built
# twice, as modules DirtyKitBase (REV) and DirtyKitNew (the tree), with -O -wmo as a release
# build does, and compare.swift times both over a 32 MiB bitmap (1 TiB at 4 KiB pages).
# Prints min and median milliseconds of each; it also checks the two agree byte for byte.
set -eu
rev=${1:-main}
n=${2:-20}
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
files="DirtyBitmap.swift DirtyRun.swift DirtyRunPacking.swift DirtyRunPacking+Bitmap.swift"
mkdir "$work/base" "$work/new"
for f in $files; do
    git -C "$root" show "$rev:Sources/IommufdContract/$f" > "$work/base/$f"
    cp "$root/Sources/IommufdContract/$f" "$work/new/$f"
done
for v in Base New; do
    d=$(echo $v | tr A-Z a-z)
    (cd "$work/$d" && swiftc -O -wmo -parse-as-library -emit-library -emit-module -module-name DirtyKit$v -o libDirtyKit$v.so $files)
done
swiftc -O -I "$work/base" -I "$work/new" -L "$work/base" -L "$work/new" -lDirtyKitBase -lDirtyKitNew \
    -Xlinker -rpath -Xlinker "$work/base" -Xlinker -rpath -Xlinker "$work/new" \
    "$root/Benchmarks/probes/dirty-scan/compare.swift" -o "$work/compare"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); base = $rev, new = the working tree"
"$work/compare" "$n"
