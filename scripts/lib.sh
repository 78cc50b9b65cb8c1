# Shell helpers shared by scripts/test and scripts/demo (sourced, not run).

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 DEBIAN_FRONTEND=noninteractive
# Go's usual install location is often missing from PATH in non-login shells (CI).
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
fi

section() { printf '\n==> %s\n' "$*"; }
die() { printf '\n%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# pyenv's shims answer only for its active version: put every installed CPython 3.x on PATH
# (newest first) so that `python3.12` finds 3.12 for the tests on each supported version.
add_pyenv_pythons() {
    local root dir
    root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    for dir in $(ls -d "$root"/versions/3.*/bin 2>/dev/null | grep -E '/3\.[0-9]+\.[0-9]+/bin$' | sort -V); do
        PATH="$dir:$PATH"
    done
    export PATH
}

# The newest Python this machine has among those pyproject.toml's classifiers support.
newest_python() {
    local version
    for version in $(grep -oE 'Python :: 3\.[0-9]+"' pyproject.toml | grep -oE '3\.[0-9]+' | sort -rV); do
        if "python$version" -c 'import sys' 2>/dev/null; then
            command -v "python$version"
            return
        fi
    done
}

# Make .venv with monarch and its development dependencies installed.
ensure_venv() {
    section "Python environment (.venv)"
    add_pyenv_pythons
    python=$(newest_python)
    [ -n "$python" ] || python=$(command -v python3 || true)
    [ -n "$python" ] || die "Python 3.11 or newer is needed"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is older than Python 3.11"
    # A venv made by another Python (or a moved clone) is broken: start it again.
    wanted=$("$python" -c 'import sys; print(sys.version)')
    if [ -e .venv ] && [ "$(.venv/bin/python -c 'import sys; print(sys.version)' 2>/dev/null)" != "$wanted" ]; then
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
