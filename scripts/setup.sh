# Shared set-up for the README's two commands; sourced, not run. Usage: source setup.sh [EXTRAS]
# Creates .venv (once), installs tinygraph editable with EXTRAS (again only when pyproject.toml
# changes), and makes sure Graphviz's `dot` executable is there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${1:-}"
TARGET="$ROOT${EXTRAS:+[$EXTRAS]}"

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "tinygraph needs Python 3.11 or newer as python3 (found: $(python3 --version 2>&1))." >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating the virtual environment $VENV ..."
    python3 -m venv "$VENV"
fi

stamp="$VENV/.installed-$(echo "${EXTRAS:-base}" | tr ',' '-')-$(sha1sum "$ROOT/pyproject.toml" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "Installing $TARGET into $VENV (first run only${EXTRAS:+; extras take a minute}) ..."
    if ! "$VENV/bin/python" -m pip install -q -e "$TARGET" > "$VENV/pip.log" 2>&1; then
        tail -n 30 "$VENV/pip.log" >&2
        echo "pip install failed; the full log is $VENV/pip.log" >&2
        exit 1
    fi
    touch "$stamp"
fi

# The browser tests (test extras) drive Debian's Chromium; Playwright never downloads one.
if [[ ",$EXTRAS," == *",test,"* ]] && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then
        echo "Installing Chromium (for the explorer's browser tests) with apt-get ..."
        apt-get install -y -q chromium > /dev/null 2>&1 \
            || { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q chromium > /dev/null; } \
            || echo "NOTE: could not install chromium; the browser tests will be skipped." >&2
    else
        echo "NOTE: /usr/bin/chromium is missing, so the explorer's browser tests will be" >&2
        echo "      skipped. Install it: 'sudo apt-get install chromium' (Debian/Ubuntu)." >&2
    fi
fi

if ! command -v dot > /dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then
        echo "Installing Graphviz (the dot executable) with apt-get ..."
        apt-get install -y -q graphviz > /dev/null 2>&1 \
            || { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q graphviz > /dev/null; }
    else
        echo "NOTE: Graphviz's 'dot' executable is missing, so diagrams can be produced as DOT" >&2
        echo "      text but not rendered to images. Install it: 'sudo apt-get install graphviz'" >&2
        echo "      (Debian/Ubuntu), 'brew install graphviz' (macOS), or see graphviz.org." >&2
    fi
fi
