#!/usr/bin/env bash
# Set up everything this project needs, idempotently, then optionally run it.
#
#   ./setup.sh          set up only
#   ./setup.sh run      set up, then start the site (http://127.0.0.1:8000/)
#   ./setup.sh test     set up, then run the whole test suite (extra arguments go to pytest): once on
#                       SQLite, then the tests that use the database once more on a private PostgreSQL
#                       (started by the tests in a temporary directory, on a free port, and stopped)
#
# Installs, only when missing: Debian packages redis-server, postgresql (its server programs, for the
# tests; the machine's own PostgreSQL service is never used), chromium and npm (as root; otherwise it
# prints the apt-get command to run), the virtual environment .venv/ and the pinned Python packages
# of requirements.txt, and the pinned front-end assets of package-lock.json (htmx and its WebSocket
# extension, copied into static/vendor/). Each is re-installed only when its lock file changes.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup]\033[0m %s\n' "$*" >&2; exit 1; }

# 1. System packages.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, off the PATH.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
{ [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; } || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian packages: ${missing[*]} (once)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || die "apt-get update failed; install ${missing[*]} by hand"
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || die "apt-get install ${missing[*]} failed"
    else
        die "missing ${missing[*]}: run 'sudo apt-get install ${missing[*]}', then run this again"
    fi
fi

# 2. Virtual environment and Python packages.
command -v python3 >/dev/null 2>&1 || die "python3 is required (Debian: sudo apt-get install python3 python3-venv)"
if [ ! -x "$PY" ]; then
    say "creating the virtual environment in .venv/"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: sudo apt-get install python3-venv)"
fi
stamp="$VENV/.requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing Python packages from requirements.txt"
    "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
    "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt
    echo "$want" > "$stamp"
fi

# 3. Front-end assets (pinned in package-lock.json; never from a CDN).
stamp_js="node_modules/.package-lock.sha256"
want_js=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp_js" ] || [ "$(cat "$stamp_js")" != "$want_js" ]; then
    say "installing front-end assets from package-lock.json"
    npm ci --no-audit --no-fund --silent || die "npm ci failed"
    echo "$want_js" > "$stamp_js"
fi
mkdir -p static/vendor
for asset in node_modules/htmx.org/dist/htmx.min.js node_modules/htmx-ext-ws/dist/ws.min.js; do
    cmp -s "$asset" "static/vendor/$(basename "$asset")" || cp "$asset" static/vendor/
done

# 4. Database.
mkdir -p var
"$PY" manage.py migrate --noinput -v 0

case "${1:-}" in
    "") say "ready. Start the site with './setup.sh run', run the tests with './setup.sh test'." ;;
    run)
        shift
        say "starting the site with demo agents on port ${PORT:-8000} (Ctrl-C stops it; --no-demo: without them)"
        exec "$PY" manage.py serve --port "${PORT:-8000}" "$@" ;;
    test)
        shift
        status=0
        say "tests on SQLite"
        "$PY" -m pytest "$@" || status=$?
        say "the tests that use the database, on a private PostgreSQL"
        EMPATHY_TEST_DATABASE=postgresql "$PY" -m pytest "$@" || {
            code=$?
            # 5: the tests chosen use no database (nothing to run on PostgreSQL)
            [ "$code" = 5 ] || status=$code
        }
        [ "$status" = 0 ] && say "both passes passed" || say "tests failed (exit $status)"
        exit "$status" ;;
    *) die "unknown command '$1': use run, test or nothing" ;;
esac
