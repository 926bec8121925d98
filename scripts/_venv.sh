# Sourced by scripts/run and scripts/test: make .venv (Python 3.11+) and keep the editable install current.
# Usage: ensure_venv EXTRAS   (EXTRAS is "" for the app, "test" for the app and its test tools)

VENV=.venv

python_ok() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    local extras="$1" spec=. stamp hash python
    [ -n "$extras" ] && spec=".[$extras]"
    stamp="$VENV/.installed-${extras:-app}"

    if [ ! -x "$VENV/bin/python" ]; then
        if ! python=$(find_python); then
            echo "error: Python 3.11 or newer is needed and none was found (tried \$PYTHON, python3, python3.13, python3.12, python3.11)." >&2
            echo "       Install it (Debian 12: apt-get install python3 python3-venv) or point PYTHON at one." >&2
            exit 1
        fi
        echo "Creating $VENV with $python ($("$python" -c 'import platform; print(platform.python_version())'))…" >&2
        if ! "$python" -m venv "$VENV"; then
            echo "error: '$python -m venv' failed (Debian: apt-get install python3-venv)." >&2
            rm -rf "$VENV"
            exit 1
        fi
    elif ! python_ok "$VENV/bin/python"; then
        echo "error: $VENV uses Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'); 3.11 or newer is needed." >&2
        echo "       Remove it (rm -rf $VENV) and run this again." >&2
        exit 1
    fi

    # Reinstall only when pyproject.toml changed since the last install with these extras.
    hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ] || [ ! -x "$VENV/bin/mailer" ]; then
        echo "Installing $spec into $VENV…" >&2
        if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >"$VENV/install.log" 2>&1; then
            cat "$VENV/install.log" >&2
            echo "error: installing $spec failed (the log above is kept in $VENV/install.log)." >&2
            exit 1
        fi
        echo "$hash" > "$stamp"
        # The test extras include the app: the plain install is current too.
        [ -n "$extras" ] && echo "$hash" > "$VENV/.installed-app"
    fi
    return 0
}
