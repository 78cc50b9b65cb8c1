# Shell helpers shared by scripts/test and scripts/demo (sourced, not run).

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 DEBIAN_FRONTEND=noninteractive
# Go's usual install location is often missing from PATH in non-login shells (CI).
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
fi

section() { printf '\n==> %s\n' "$*"; }
die() { printf '\n%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Make .venv with monarch and its development dependencies installed.
ensure_venv() {
    section "Python environment (.venv)"
    python=$(command -v python3.11 || command -v python3 || true)
    [ -n "$python" ] || die "Python 3.11 or newer is needed"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is older than Python 3.11"
    # A venv made by another Python (or a moved clone) is broken: start it again.
    if [ -e .venv ] && ! .venv/bin/python -c 'import sys' 2>/dev/null; then
        rm -rf .venv
    fi
    if [ ! -e .venv ]; then
        if ! "$python" -m venv .venv 2>/dev/null; then
            # Debian's Python lacks ensurepip until python3-venv is installed.
            rm -rf .venv
            as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv >/dev/null
            "$python" -m venv .venv
        fi
    fi
    # Reinstall only when the dependencies may have changed: pip's no-op still takes seconds.
    stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat .venv/.monarch-installed 2>/dev/null || true)" != "$stamp" ]; then
        .venv/bin/python -m pip install -q -e '.[dev]'
        echo "$stamp" > .venv/.monarch-installed
    fi
    .venv/bin/python --version
}
