"""Renames file and directory names compiled into the executor's private copies of ld.so, libc and libcrypto,
so that they take nothing from the root file system the executor replaces with a base image's.

    python3 unroot.py PREFIX LIBDIR          (LIBDIR: PREFIX/lib, with ld-linux*.so*, libc.so.6, libcrypto.so.3)

Each name is replaced in place by one of exactly the same length with no NUL in it (glibc keeps some of
these as sized arrays and NUL-separated lists: sizeof() must not change and no empty entry may appear), under
PREFIX, padded with '/' (a path with repeated slashes is the same path) or '-'. An object that lacks a name
this script expects is an error: the build then stops instead of making an image that reads the root.
"""
import glob
import os
import re
import sys


def same_length(old: bytes, new: str) -> bytes:
    """new padded with '/' to len(old); a file name (no trailing slash wanted) gets the padding inside."""
    b = new.encode()
    if len(b) > len(old):
        raise SystemExit(f"unroot: {new} is longer than {old.decode()}")
    return b + b"/" * (len(old) - len(b))


def rename(path: str, pairs: list[tuple[bytes, bytes]], what: str, exact: bool = True) -> None:
    data = open(path, "rb").read()
    for old, new in pairs:
        # Same length, NULs (terminators, list separators) exactly where they were.
        assert len(old) == len(new), (old, new)
        assert [i for i, c in enumerate(old) if c == 0] == [i for i, c in enumerate(new) if c == 0], (old, new)
        n = data.count(old)
        if n == 0 or (exact and n != 1):
            raise SystemExit(f"unroot: {os.path.basename(path)}: {old.decode()} found {n} times")
        data = data.replace(old, new)
        print(f"unroot: {os.path.basename(path)}: {old.decode()} -> {new.decode()} ({n}x) [{what}]",
              file=sys.stderr)
    open(path, "wb").write(data)


def dir_renames(data: bytes, old_dir: str, new_dir: str) -> list[tuple[bytes, bytes]]:
    """old_dir as a prefix of every string that holds it, including old_dir itself."""
    old = old_dir.encode()
    return [(old, same_length(old, new_dir))] if old in data else []


def main() -> None:
    prefix, libdir = sys.argv[1], sys.argv[2]

    # ld.so: /etc/ld.so.preload (read at every process start), /etc/ld.so.cache and the default directories
    # (searched by dlopen() of a name not found through the rpath: NSS modules the root's nsswitch.conf names).
    (ldso,) = glob.glob(os.path.join(libdir, "ld-linux*.so*"))
    data = open(ldso, "rb").read()
    pairs = [(b"/etc/ld.so.preload\0", (prefix + "/no-preload").encode().ljust(18, b"-") + b"\0"),
             (b"/etc/ld.so.cache\0", (prefix + "/no-cache").encode().ljust(16, b"-") + b"\0")]
    m = re.search(rb"/lib/([a-z0-9_]+-linux-gnu[a-z0-9_]*)/\0/usr/lib/\1/\0/lib/\0/usr/lib/\0", data)
    if not m:
        raise SystemExit("unroot: ld.so: the default search directories were not found")
    dirs, new = m.group(0).split(b"\0")[:-1], []
    for d in dirs:  # a name under PREFIX where it fits; /sys/ (sysfs, never a library) for the 5-byte /lib/
        if len(d) >= len(prefix) + 2:
            new.append((prefix + "/" + "-" * (len(d) - len(prefix) - 2) + "/").encode())
        else:
            new.append(b"/sys" + b"/" * (len(d) - 4))
    pairs.append((m.group(0), b"\0".join(new) + b"\0"))
    for old, nw in pairs:
        if len(nw) != len(old):
            raise SystemExit(f"unroot: prefix {prefix} is too long to rename {old!r}")
    rename(ldso, pairs, "loader", exact=False)
    triplet = m.group(1).decode()

    # libc: the locale directory and archive (Python sets LC_CTYPE at start-up: a fresh interpreter in a root
    # with /usr/lib/locale/C.utf8 would map it; glibc has C.UTF-8 built in) and gconv's modules and cache.
    libc = os.path.join(libdir, "libc.so.6")
    data = open(libc, "rb").read()
    pairs = dir_renames(data, "/usr/lib/locale", prefix + "/locale") + \
        dir_renames(data, f"/usr/lib/{triplet}/gconv", prefix + "/lib/gconv")
    if len(pairs) != 2:
        raise SystemExit("unroot: libc: locale or gconv directory not found")
    rename(libc, pairs, "locale, gconv", exact=False)

    # libcrypto: OPENSSLDIR (openssl.cnf, which can load provider modules; cert.pem, certs/), the provider
    # modules' and engines' directories. OPENSSLDIR becomes PREFIX/ssl, where the CA certificates are.
    for crypto in glob.glob(os.path.join(libdir, "libcrypto.so.*")):
        data = open(crypto, "rb").read()
        pairs = dir_renames(data, "/usr/lib/ssl", prefix + "/ssl") + \
            dir_renames(data, f"/usr/lib/{triplet}/ossl-modules", prefix + "/lib/ossl-modules") + \
            dir_renames(data, f"/usr/lib/{triplet}/engines-3", prefix + "/lib/engines-3")
        if not pairs or not pairs[0][0] == b"/usr/lib/ssl":
            raise SystemExit(f"unroot: {crypto}: OPENSSLDIR /usr/lib/ssl not found")
        rename(crypto, pairs, "openssl dirs", exact=False)


if __name__ == "__main__":
    main()
