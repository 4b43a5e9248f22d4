#!/bin/sh
# Runs inside the builder stage of the Containerfile (any glibc Linux with python3 + pip, patchelf, ldd,
# strip): assembles a self-contained kiln under $KILN_DIR (default /kaniko) that loads nothing from the root
# file system, so the executor keeps working after it has replaced /lib, /usr and /etc with a base image's.
#
#   assemble.sh SRC     SRC holds pyproject.toml, executor/ and snapshot/ (the build context's copies)
#
# The files are written under $KILN_STAGE (default: P itself), every path baked into them names P: the builder
# stage stages into /out/kaniko, so that a builder whose own files live under /kaniko (kiln, kaniko) can build
# this image without the RUN overwriting its own /kaniko. Library paths are $ORIGIN-relative, and the staged
# interpreter is run through the staged ld.so, so nothing here needs P to exist at build time.
#
# Layout made (prefix P = $KILN_DIR):
#   P/bin/python3                     the interpreter: ELF interpreter P/lib/ld-linux-x86-64.so.2,
#                                     DT_RPATH $ORIGIN/../lib
#   P/lib/*.so*                       every shared library ldd names for it, lib-dynload and the wheels' modules
#   P/lib/pythonX.Y/                  the standard library, trimmed; sys.prefix is found from the binary's place
#   P/lib/pythonX.Y/<site dir>/       kiln (executor, snapshot) and its dependencies from PyPI
#   P/executor, P/warmer              '#!P/bin/python3 -I' scripts calling executor.main
#   P/ssl/certs/                      ca-certificates.crt plus OpenSSL-hashed single certificates
#   P/.docker/                        empty; DOCKER_CONFIG points here
set -eu
src=${1:?usage: assemble.sh SRC}
here=$(cd "$(dirname "$0")" && pwd)
P=${KILN_DIR:-/kaniko}
S=${KILN_STAGE:-$P}
say() { echo "assemble: $*" >&2; }

host_py=$(command -v python3)
host_py=$(readlink -f "$host_py")
ver=$("$host_py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
stdlib=$("$host_py" -c 'import os; print(os.path.dirname(os.__file__))')
dynload=$("$host_py" -c 'import os, _ssl; print(os.path.dirname(_ssl.__file__))')
interp=$(patchelf --print-interpreter "$host_py")
ldso_name=$(basename "$interp")
say "python $ver at $host_py, stdlib $stdlib, lib-dynload $dynload, ELF interpreter $interp"

mkdir -p "$S/bin" "$S/lib" "$S/ssl/certs" "$S/.docker"
lib=$S/lib/python$ver

# 1. The interpreter (a real file, not a symlink: getpath() looks for the landmark lib/pythonX.Y/os.py from
#    the directory of the resolved executable upwards, which makes sys.prefix = P).
#    Stripped now, before step 3's patchelf: binutils' strip after patchelf --set-interpreter shrinks the
#    segment patchelf added for the program headers, and step 6's patchelf then leaves them outside any LOAD
#    segment (seen on arm64: readelf "the PHDR segment is not covered by a LOAD segment", ld.so segfaults).
cp "$host_py" "$S/bin/python$ver"
strip --strip-unneeded "$S/bin/python$ver" 2>/dev/null || true
ln -sf "python$ver" "$S/bin/python3"

# 2. The standard library, trimmed. Debian's sitecustomize.py is a symlink into /etc: dropped with every
#    other symlink that leaves the tree.
mkdir -p "$lib"
(cd "$stdlib" && tar -cf - \
    --exclude=./test --exclude=./idlelib --exclude=./tkinter --exclude=./turtledemo --exclude=./ensurepip \
    --exclude=./lib2to3 --exclude=./pydoc_data --exclude=./distutils --exclude=./venv --exclude=./curses \
    --exclude=./dbm --exclude='./config-*' --exclude=./site-packages --exclude=./dist-packages \
    --exclude=./turtle.py --exclude=./EXTERNALLY-MANAGED --exclude=./sitecustomize.py \
    --exclude=./lib-dynload --exclude='__pycache__' --exclude='*.pyc' --exclude='*.exe' \
    --exclude='*/tests' --exclude='*/idle_test' .) | (cd "$lib" && tar -xf -)
mkdir -p "$lib/lib-dynload"
for so in "$dynload"/*.so; do
  case "$(basename "$so")" in
    _test*|_ctypes_test*|xxlimited*|_xxtestfuzz*|_tkinter*|nis.*|_dbm.*|_gdbm.*|_curses*|readline.*|ossaudiodev.*) ;;
    *) cp "$so" "$lib/lib-dynload/" ;;
  esac
done
find "$lib" -type l | while read -r l; do
  case "$(readlink -f "$l")" in "$lib"/*) ;; *) say "drop symlink $l -> $(readlink "$l")"; rm -f "$l" ;; esac
done
# No user site-packages from the build's root: in 3.11 `site` is a frozen module (editing site.py changes
# nothing), so the guard is -I on every entry point (implies -s and -E); kiln starts sub-interpreters with
# `sys.executable -I` as well.

# An empty (valid) python3XY.zip where getpath() looks first: it searches for this zip landmark upward from
# the executable's directory before it looks for os.py, and a zip found in a parent of P would become the
# prefix (seen with P=/tmp/kk and a /tmp/lib/python311.zip; for P=/kaniko 3.11 stops short of / itself).
"$host_py" -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1], 'w').close()" \
  "$S/lib/python$(echo "$ver" | tr -d .).zip"

# 3. The ELF interpreter (its final path), and how to run the staged python now: through the staged ld.so,
#    which then resolves $ORIGIN against the staged files (and, until step 6, finds the builder's libraries).
cp -L "$interp" "$S/lib/$ldso_name"
patchelf --set-interpreter "$P/lib/$ldso_name" "$S/bin/python$ver"
spy() { "$S/lib/$ldso_name" "$S/bin/python$ver" "$@"; }

# 4. The site directory, as the relocated interpreter computes it (Debian: dist-packages, upstream:
#    site-packages), then kiln's dependencies (from pyproject.toml) and kiln itself.
site=$(spy -I -c "
import site, sys
c = [p for p in site.getsitepackages() if p.startswith('$lib/')]
print(c[-1])")
say "sys.prefix=$(spy -I -c 'import sys; print(sys.prefix)') site=$site"
mkdir -p "$site"
"$host_py" -c "
import tomllib
for d in tomllib.load(open('$src/pyproject.toml', 'rb'))['project']['dependencies']:
    print(d)" > /tmp/kiln-requirements.txt
say "dependencies: $(tr '\n' ' ' < /tmp/kiln-requirements.txt)"
PIP_BREAK_SYSTEM_PACKAGES=1 "$host_py" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
  --no-compile --only-binary=:all: --target "$site" -r /tmp/kiln-requirements.txt
rm -rf "$site/bin"
# requests' character detection, charset_normalizer, guesses the encoding of a text answer that names none
# (Response.apparent_encoding); without a detector requests takes UTF-8, which is what registries and the cloud
# APIs kiln calls answer in (JSON is UTF-8, RFC 8259; XML without a declaration too). Importing it was ~7 % of
# the executor's start-up (38 M of 543 M instructions, callgrind): left out of the image. executor/__init__.py
# quiets the warning requests gives for its absence.
rm -rf "$site"/charset_normalizer "$site"/charset_normalizer-*.dist-info
cp -r "$src/executor" "$src/snapshot" "$site/"
find "$site" -type d -name __pycache__ -prune -exec rm -rf {} +

# 5. Shared libraries: the closure ldd reports for every ELF object under P, copied into P/lib.
elves() { find "$S" -type f \( -name '*.so' -o -name '*.so.*' -o -path "$S/bin/*" \) ! -name "$ldso_name" \
          -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print; }
elves > /tmp/kiln-elves
while read -r f; do
  if ldd "$f" 2>&1 | grep -q 'not found'; then say "$f: $(ldd "$f" 2>&1 | grep 'not found')"; exit 1; fi
  ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done < /tmp/kiln-elves | sort -u > /tmp/kiln-libs
while read -r l; do
  n=$(basename "$l")
  case "$l" in "$S"/*) continue ;; esac
  [ -e "$S/lib/$n" ] || cp -L "$l" "$S/lib/$n"
done < /tmp/kiln-libs
say "shared libraries: $(ls "$S/lib" | grep -c '\.so')"

# 6. Strip, then point every object's library path at P/lib, relative to the object ($ORIGIN/../lib for
#    P/bin/python3.11, $ORIGIN/../.. for lib-dynload, ...). DT_RPATH, not DT_RUNPATH: it applies to the
#    dependencies of dependencies too and comes before LD_LIBRARY_PATH. An existing $ORIGIN path (the
#    wheels' bundled .libs directories) is kept in front.
elves > /tmp/kiln-elves
while read -r f; do
  case "$f" in "$S"/bin/*) ;; *) strip --strip-unneeded "$f" 2>/dev/null || true ;; esac   # bin/: step 1
  old=$(patchelf --print-rpath "$f" 2>/dev/null || true)
  rel=$("$host_py" -c 'import os, sys; print(os.path.relpath(sys.argv[1], os.path.dirname(sys.argv[2])))' \
        "$S/lib" "$f")
  new='$ORIGIN'; [ "$rel" = . ] || new="\$ORIGIN/$rel"
  [ -n "$old" ] && new=$old:$new
  patchelf --force-rpath --set-rpath "$new" "$f"
done < /tmp/kiln-elves

# 6b. The private ld.so, libc and libcrypto must not take instructions from the root file system either:
#     without this, a new process (a re-exec, a subprocess) would preload what the base image's
#     /etc/ld.so.preload names; dlopen() of a name not in P/lib (glibc loads the NSS modules that the root's
#     nsswitch.conf names, "myhostname", "sss", ..., when a lookup gets past the built-in files and dns)
#     would search its /etc/ld.so.cache and /lib, /usr/lib; a fresh interpreter would map its
#     /usr/lib/locale/C.utf8 and gconv cache; OpenSSL would read its /usr/lib/ssl/openssl.cnf (which can load
#     provider modules). unroot.py renames those compiled-in names in place, same length, to names under P.
"$host_py" "$here/unroot.py" "$P" "$S/lib"

# 7. Entry points: the kernel runs P/bin/python3 from the shebang line; -I: no PYTHON* variables, no user
#    site, no script directory on sys.path.
for ep in executor warmer; do
  cat > "$S/$ep" <<PY
#!$P/bin/python3 -I
from executor.main import ${ep}_entry
${ep}_entry()
PY
  chmod 0755 "$S/$ep"
done

# 8. CA certificates: the ca-certificates package's Mozilla set (not /etc/ssl/certs, which may hold the
#    builder's local additions), as the bundle at kaniko's path and as single certificates under their OpenSSL
#    hash names, so that OpenSSL's SSL_CERT_DIR lookup (ssl.create_default_context()) finds them too.
certs=$S/ssl/certs
: > "$certs/ca-certificates.crt"
for c in $(cd /usr/share/ca-certificates/mozilla && LC_ALL=C ls -1 *.crt); do
  f=/usr/share/ca-certificates/mozilla/$c
  cat "$f" >> "$certs/ca-certificates.crt"
  h=$(openssl x509 -hash -noout -in "$f")
  n=0; while [ -e "$certs/$h.$n" ]; do n=$((n + 1)); done
  cp "$f" "$certs/$h.$n"
done
say "CA certificates: $(grep -c 'BEGIN CERTIFICATE' "$certs/ca-certificates.crt")"
# OpenSSL's default file (OPENSSLDIR/cert.pem, OPENSSLDIR being P/ssl after unroot.py) is the same bundle.
ln -sf certs/ca-certificates.crt "$S/ssl/cert.pem"
# requests verifies with certifi's bundle by default: make that kaniko's bundle (as Debian's python3-certifi
# points to /etc/ssl/certs), so there is one set of trusted CAs in the image, at kaniko's path.
if [ -f "$site/certifi/cacert.pem" ]; then
  rm "$site/certifi/cacert.pem"
  ln -s "$P/ssl/certs/ca-certificates.crt" "$site/certifi/cacert.pem"
fi

# 9. Byte code, compiled now by the relocated interpreter (paths in it are P/...), so that the
#    executor never writes __pycache__ at run time; unchecked-hash .pyc files do not depend on mtimes.
#    -s/-p: the file names in the byte code are P/..., not the staging directory's.
spy -I -m compileall -q -j0 -s "$S" -p "$P" --invalidation-mode unchecked-hash "$lib" >/dev/null
#    What start-up compiles besides modules, compiled once here too (executor.startup_code: the methods of
#    kiln's dataclasses and the programs of regular expressions, a third of start-up otherwise), by a fresh
#    interpreter that imports every kiln module.
spy -I -c "from executor import startup_code; print('assemble: start-up code (dataclass texts, regular expressions):', startup_code.write())" >&2

# 10. Check: the interpreter starts from P alone (the hardened ld.so, P/lib only), every ELF object under P
#     loads with all its symbols bound (dlopen RTLD_NOW; an optional module's missing Python-level imports,
#     like zstandard's cffi backend, do not matter here), and what kiln needs imports.
spy -I -c "
import ctypes, sys
n = 0
for f in open('/tmp/kiln-elves').read().split():
    if not f.startswith('$S/bin/'):
        ctypes.CDLL(f)
        n += 1
import executor, snapshot, requests, xxhash, isal, zstandard, dulwich, ssl, zlib, lzma, bz2, ctypes, hashlib
import importlib.util, os
# the byte code of step 9 is there for every kiln module: start-up loads it, compiling nothing (issue 21)
missing = [os.path.join(d, f) for pkg in (executor, snapshot) for d, _, fs in os.walk(pkg.__path__[0])
           for f in fs if f.endswith('.py') and not os.path.isfile(importlib.util.cache_from_source(os.path.join(d, f)))]
assert not missing, 'no byte code for ' + ', '.join(missing[:5])
# and the tables of step 9 hold every dataclass and regular expression of kiln's start-up: nothing compiled
import executor.main, executor.engine.session
from executor import startup_code
classes, regex = startup_code.installed()
assert classes and classes.hits > 0 and classes.misses == 0, 'dataclass code table not used: %r' % vars(classes or 0)
assert regex and regex.hits > 0 and regex.misses == 0, 'regular expression table not used: %r' % vars(regex or 0)
assert sys.prefix == '$S', sys.prefix
print('assemble: ok,', sys.version.split()[0], 'prefix', sys.prefix, '-', n, 'shared objects load',
      file=sys.stderr)"
du -sh "$S" >&2
