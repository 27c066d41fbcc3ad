#!/usr/bin/env bash
# Build one package's wheel (and those of its declared unicorn-* dependencies),
# install them into a fresh venv holding nothing else of ours, run its tests.
set -euo pipefail
pkg="$1"
uv="${UV:-uv}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tests="packages/unicorn-$pkg/tests"
if ! compgen -G "$tests/test_*.py" >/dev/null; then
    echo "isolated unicorn-$pkg: no tests yet"
    exit 0
fi
out="$root/.venv-isolated/$pkg"
rm -rf "$out"
mkdir -p "$out/dist"
# our dependencies, read from the package's own metadata
deps=$(python3 - "$pkg" <<'PY'
import re, sys, tomllib
meta = tomllib.load(open(f"packages/unicorn-{sys.argv[1]}/pyproject.toml", "rb"))
names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0) for d in meta["project"]["dependencies"]}
print(" ".join(sorted(n for n in names if n.startswith("unicorn-"))))
PY
)
for p in "unicorn-$pkg" $deps; do
    "$uv" build --quiet --package "$p" --wheel --out-dir "$out/dist" >/dev/null
done
"$uv" venv --quiet --python python3 "$out/venv"
"$uv" pip install --quiet --python "$out/venv/bin/python" "$out"/dist/*.whl \
    --group "packages/unicorn-$pkg/pyproject.toml:test"
# Run from outside the source tree so only the installed wheel can be imported.
cd "$out"
"$out/venv/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$out" \
    -o addopts="--import-mode=importlib" -o timeout=120 "$root/$tests"
