"""`python escape.py ATTEMPT [ARG]`: one way out of a build container, tried from a Dockerfile's RUN (see
test_hardened_pod.py). Prints what happened; exits 0 only when the attempt worked. Standard library only
(it runs on the executor image's own interpreter, /kaniko/bin/python3, over any base image).

  mount       mount a tmpfs on /escape-mnt
  ptrace      PTRACE_ATTACH to PID 1 (kiln)
  sysrq       write "h" (help: harmless even where it works) to /proc/sysrq-trigger
  module      finit_module() of a file (the kernel checks the capability before the file)
  proc1root   read FILE (a file on the node) through /proc/1/root
"""
import ctypes
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_FINIT_MODULE = 313     # x86_64
PTRACE_ATTACH = 16


def result(ok: bool, what: str) -> None:
    print(f"escape {sys.argv[1]}: {'WORKED' if ok else 'refused'}: {what}", flush=True)
    sys.exit(0 if ok else 1)


def errno_text() -> str:
    err = ctypes.get_errno()
    return f"[Errno {err}] {os.strerror(err)}"


def main() -> None:
    attempt = sys.argv[1]
    if attempt == "mount":
        os.makedirs("/escape-mnt", exist_ok=True)
        ok = libc.mount(b"tmpfs", b"/escape-mnt", b"tmpfs", ctypes.c_ulong(0), None) == 0
        result(ok, "mounted a tmpfs" if ok else errno_text())
    elif attempt == "ptrace":
        ok = libc.ptrace(ctypes.c_long(PTRACE_ATTACH), ctypes.c_long(1), None, None) == 0
        result(ok, "attached to PID 1" if ok else errno_text())
    elif attempt == "sysrq":
        try:
            with open("/proc/sysrq-trigger", "w") as f:
                f.write("h")
        except OSError as e:
            result(False, str(e))
        result(True, "wrote to /proc/sysrq-trigger")
    elif attempt == "module":
        path = "/escape.ko"
        with open(path, "wb") as f:
            f.write(b"\x7fELF not a module\n")
        fd = os.open(path, os.O_RDONLY)
        ok = libc.syscall(ctypes.c_long(SYS_FINIT_MODULE), ctypes.c_int(fd), b"", ctypes.c_int(0)) == 0
        result(ok, "loaded a module" if ok else errno_text())
    elif attempt == "proc1root":
        target = "/proc/1/root" + sys.argv[2]
        try:
            with open(target) as f:
                text = f.read()
        except OSError as e:
            result(False, str(e))
        result(True, f"read {target}: {text!r}")
    raise SystemExit(f"unknown attempt {attempt}")


if __name__ == "__main__":
    main()
