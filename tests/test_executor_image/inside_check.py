"""Runs INSIDE the executor image (runc, PID 1, an otherwise empty root) with the image's own python.

Usage: /kaniko/bin/python3 -I /check/inside_check.py FOREIGN_ROOT

Records what the interpreter maps, then does what the executor does to its root (a base image's /lib, /usr,
/etc and more copied over /), then imports and exercises everything kiln needs, starts a fresh interpreter in
the replaced root, and prints one JSON report on stdout. The test on the host judges it.
"""
import json
import os
import shutil
import subprocess
import sys

KILN = "/kaniko"


def mapped_files():
    out = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                out.add(parts[5].strip())
    return sorted(out)


def outside(paths):
    return [p for p in paths if not p.startswith(KILN + "/")]


def kiln_files():
    return {os.path.join(d, n) for d, _, names in os.walk(KILN) for n in names}


def replace_root(foreign):
    """Copy every top-level entry of `foreign` over /, replacing what is there (as extraction does)."""
    copied = []
    for name in sorted(os.listdir(foreign)):
        src, dst = os.path.join(foreign, name), os.path.join("/", name)
        if name in ("proc", "sys", "dev", "kaniko", "check", "foreign"):
            continue
        if os.path.islink(dst) or os.path.isfile(dst):
            os.unlink(dst)
        elif os.path.isdir(dst):
            shutil.rmtree(dst)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)
        copied.append(name)
    return copied


FRESH = r"""
import json, sys
import zstandard, requests, executor, snapshot, ssl, lzma, ctypes
maps = [l.split(None, 5)[5].strip() for l in open('/proc/self/maps') if len(l.split(None, 5)) == 6]
print(json.dumps({"prefix": sys.prefix, "path": sys.path, "zstandard": zstandard.__file__,
                  "tls_min_version": int(ssl.create_default_context().minimum_version),
                  "outside": [m for m in maps if m.startswith('/') and not m.startswith('/kaniko/')]}))
"""


def main():
    foreign = sys.argv[1]
    report = {
        "pid": os.getpid(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "exec_prefix": sys.exec_prefix,
        "base_prefix": sys.base_prefix,
        "path": sys.path,
        "isolated": sys.flags.isolated,
        "no_user_site": sys.flags.no_user_site,
        "environ": dict(os.environ),
        "root_before": sorted(os.listdir("/")),
        "outside_before": outside(mapped_files()),
    }
    files_before = kiln_files()
    report["replaced"] = replace_root(foreign)
    report["root_after"] = sorted(os.listdir("/"))

    # Everything below is imported for the first time only now, with the foreign /lib, /usr, /etc in place.
    import bz2, ctypes, hashlib, lzma, socket, ssl, sqlite3, uuid, zlib, decimal  # noqa: E401
    import isal.igzip, xxhash, zstandard, dulwich.repo, dulwich.objects, requests  # noqa: E401
    import executor, snapshot  # noqa: E401

    data = os.urandom(1 << 16) * 4
    checks = {}
    checks["zstd"] = zstandard.ZstdDecompressor().decompress(zstandard.ZstdCompressor().compress(data)) == data
    checks["isal"] = isal.igzip.decompress(isal.igzip.compress(data, 1)) == data
    checks["zlib"] = zlib.decompress(zlib.compress(data)) == data
    checks["lzma"] = lzma.decompress(lzma.compress(data[:4096])) == data[:4096]
    checks["bz2"] = bz2.decompress(bz2.compress(data[:4096])) == data[:4096]
    checks["xxh3"] = len(xxhash.xxh3_128_hexdigest(data)) == 32
    checks["sha256"] = hashlib.sha256(b"kiln").hexdigest()
    checks["ctypes"] = ctypes.CDLL(None).getpid() == 1
    blob = dulwich.objects.Blob.from_string(b"kiln\n")
    checks["dulwich_blob_id"] = blob.id.decode()
    checks["sqlite3"] = sqlite3.connect(":memory:").execute("select 1").fetchone() == (1,)
    ctx = ssl.create_default_context(cafile=KILN + "/ssl/certs/ca-certificates.crt")
    checks["ca_bundle_certs"] = ctx.cert_store_stats()["x509_ca"]
    checks["openssl_cert_dir"] = ssl.get_default_verify_paths().capath
    checks["tls_min_version"] = int(ssl.create_default_context().minimum_version)
    checks["getaddrinfo_localhost"] = sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80)})
    try:  # not in /etc/hosts: glibc goes on to the next module of the root's nsswitch.conf
        socket.getaddrinfo("kiln-no-such-host.invalid", 80)
        checks["unknown_host"] = "resolved"
    except socket.gaierror as e:
        checks["unknown_host"] = "gaierror"
    checks["requests_ca_bundle"] = os.path.realpath(requests.utils.DEFAULT_CA_BUNDLE_PATH)
    checks["requests_session"] = type(requests.Session()).__name__
    checks["uuid"] = len(str(uuid.uuid4())) == 36
    report["checks"] = checks
    report["outside_after"] = outside(mapped_files())

    # As the entry points start it (-I), in a hostile environment: the foreign root's python home named in
    # PYTHONHOME/PYTHONPATH, a user site-packages under $HOME that shadows zstandard, /etc/ld.so.preload.
    fresh_env = {"PATH": "/usr/local/bin:/kaniko", "HOME": "/root", "PYTHONHOME": "/usr",
                 "PYTHONPATH": "/usr/lib/python3.11:/root/.local/lib/python3.11/site-packages"}
    p = subprocess.run([KILN + "/bin/python3", "-I", "-c", FRESH], env=fresh_env, capture_output=True, text=True)
    report["fresh"] = {"rc": p.returncode, "stderr": p.stderr[-3000:]}
    if p.returncode == 0:
        report["fresh"].update(json.loads(p.stdout))
    report["kiln_files_added"] = sorted(kiln_files() - files_before)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
