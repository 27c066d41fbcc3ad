#!/usr/bin/env bash
# The version-sensitive suites (the parser, the ASGI worker: eager start, TLS)
# under another Python, when this machine has it; skipped when it does not.
# CI's own interpreter runs everything through `make pytest`.
set -euo pipefail
py="$1"
uv="${UV:-uv}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# On PATH, or installed by pyenv without being among its active versions.
find_python() {
    "$py" -c "import sys; print(sys.executable)" 2>/dev/null && return 0
    command -v pyenv >/dev/null || return 1
    local candidate
    for candidate in "$(pyenv root)"/versions/*/bin/"$py"; do
        [ -x "$candidate" ] && "$candidate" -c "import sys; print(sys.executable)" && return 0
    done
    return 1
}
if ! exe=$(find_python); then
    echo "$py: not on this machine, skipped"
    exit 0
fi
out="$root/.venv-$py"
rm -rf "$out"
"$uv" venv --quiet --python "$exe" "$out"
"$uv" pip install --quiet --python "$out/bin/python" \
    -e "packages/unicorn-http[http2]" -e packages/unicorn-core -e packages/unicorn-asgi \
    pytest pytest-timeout hypothesis httpx h11 wsproto websockets uvloop hyperframe hpack
echo "== $("$out/bin/python" -V): unicorn-http, unicorn-asgi, the ASGI integration tests"
"$out/bin/python" -m pytest -q -p no:cacheprovider \
    packages/unicorn-http/tests packages/unicorn-asgi/tests \
    tests/test_asgi_server.py tests/test_asgi_receive.py tests/test_asgi_websocket.py \
    tests/test_asgi_tls.py tests/test_asgi_proxy_protocol.py
