#!/usr/bin/env bash
# Download the wheels the GPU check needs on a device with Python 3.12 and no network.
#
#   bash tests/device/download_wheels.sh            # into .whl/ at the repository root
#   WHEEL_DIR=/tmp/wheels bash tests/device/download_wheels.sh
#
# It resolves tests/device/requirements.txt for CPython 3.12 on manylinux x86-64 (pip's own
# resolver, nothing installed here), drops every package the device image already has
# (tests/device/image_packages.txt), and downloads the rest, one version each, with --no-deps.
# Needs network access to PyPI, on this machine only. The folder must stay under 64 MiB with
# the working tree; the script prints its size. Add .whl/ to .git/info/exclude so that git
# ignores it and the device tool carries it (carry: [".whl"]).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${WHEEL_DIR:-$root/.whl}"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

platforms=()
for n in 39 35 34 31 28 27 24 17 14 12 5; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64)
target=(--python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
        --only-binary=:all: "${platforms[@]}")

echo "Resolving $here/requirements.txt for CPython 3.12 ..."
"$python" -m pip install --quiet --dry-run --ignore-installed --target "$work/target" \
    "${target[@]}" --report "$work/report.json" -r "$here/requirements.txt"

"$python" - "$work/report.json" "$here/image_packages.txt" > "$work/needed.txt" <<'PY'
import json, re, sys

def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()

report = json.load(open(sys.argv[1]))
image = {canonical(line.strip()) for line in open(sys.argv[2])
         if line.strip() and not line.startswith("#")}
for item in report["install"]:
    meta = item["metadata"]
    if canonical(meta["name"]) not in image:
        print(f"{meta['name']}=={meta['version']}")
PY

mkdir -p "$out"
rm -f "$out"/*.whl
echo "Downloading $(wc -l < "$work/needed.txt") wheels into $out ..."
"$python" -m pip download --quiet --no-deps "${target[@]}" -d "$out" -r "$work/needed.txt"
ls "$out" | sed 's/^/  /'
du -sh "$out"
