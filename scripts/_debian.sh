# Sourced by scripts/test: the Debian packages some tests drive, installed once.
#   chromium                  the browser tests (never a downloaded browser)
#   golang-go, golang-golang-x-mod-dev
#                             Go's golang.org/x/mod (sumdb/note, sumdb/tlog): the interop
#                             tests check our signed notes and tiles with code we did not write
_missing=()
[ -x /usr/bin/chromium ] || _missing+=(chromium)
command -v go >/dev/null 2>&1 || _missing+=(golang-go)
[ -d /usr/share/gocode/src/golang.org/x/mod/sumdb/note ] || _missing+=(golang-golang-x-mod-dev)
if [ "${#_missing[@]}" -gt 0 ]; then
  _sudo=()
  [ "$(id -u)" = 0 ] || _sudo=(sudo)
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; then
    echo "Installing Debian's ${_missing[*]} for the tests..." >&2
    "${_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${_sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${_missing[@]}" >/dev/null
  else
    echo "warning: ${_missing[*]} missing and cannot be installed here;" \
         "the tests that need them will be skipped (they say why)" >&2
  fi
fi
