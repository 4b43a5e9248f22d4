"""Deterministic test trees for the snapshot benchmarks.

`make_tree(root, files, total_bytes)` writes `files` regular files (plus a few symlinks and hard
links) spread over ~100-file directories, about half of the content compressible text and half
random bytes, so gzip ratios resemble a real base image.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

_WORDS = (b"lib usr share doc locale python error config value return static const int char "
          b"void struct import from self none true false begin end module package version ").split()


@dataclass(frozen=True)
class TreeStats:
    files: int
    dirs: int
    symlinks: int
    hardlinks: int
    bytes: int


def _text_pool(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(_WORDS) for _ in range(64)) + b"\n"
    return bytes(out[:size])


def make_tree(root: str, files: int, total_bytes: int, seed: int = 1) -> TreeStats:
    """Create the tree under `root` (which must not exist or be empty)."""
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    pool = _text_pool(rng, 1 << 20)
    random_pool = rng.randbytes(1 << 22)
    # the size mix below averages ~0.9 of `mean`: scale so the tree adds up to about total_bytes
    mean = max(1, int(total_bytes / files / 0.9))
    per_dir = 100
    dirs = 0
    written = 0
    symlinks = hardlinks = 0
    paths: list[str] = []
    for i in range(files):
        if i % per_dir == 0:
            d = os.path.join(root, f"d{i // (per_dir * 30):03d}", f"s{(i // per_dir) % 30:02d}")
            os.makedirs(d, exist_ok=True)
            dirs += 1
        # sizes: mostly small, a few large, mean ~ `mean`
        r = rng.random()
        if r < 0.6:
            size = rng.randint(0, mean // 2)
        elif r < 0.97:
            size = rng.randint(mean // 2, mean * 2)
        else:
            size = rng.randint(mean * 4, mean * 12)
        off = rng.randrange(0, (1 << 20) - min(size, 1 << 19) if size < (1 << 19) else 1)
        if rng.random() < 0.5:
            data = (pool * (size // len(pool) + 1))[off:off + size] if size > len(pool) - off else pool[off:off + size]
        else:
            start = rng.randrange(0, (1 << 22) - min(size, 1 << 21))
            data = random_pool[start:start + size] if size <= (1 << 21) else rng.randbytes(size)
        p = os.path.join(d, f"f{i:06d}.dat")
        with open(p, "wb") as f:
            f.write(data)
        written += len(data)
        paths.append(p)
        if i % 997 == 0:
            os.symlink(os.path.basename(p), p + ".lnk")
            symlinks += 1
        if i % 1999 == 0:
            os.link(p, p + ".hard")
            hardlinks += 1
    return TreeStats(files=files, dirs=dirs, symlinks=symlinks, hardlinks=hardlinks, bytes=written)


def make_mixed_files(root: str, total_bytes: int, seed: int = 2) -> TreeStats:
    """Fewer, larger files (shared-library-like mix) adding up to `total_bytes`."""
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    pool = _text_pool(rng, 1 << 22)
    written = files = 0
    while written < total_bytes:
        d = os.path.join(root, f"m{files // 200:03d}")
        os.makedirs(d, exist_ok=True)
        size = min(total_bytes - written, int(rng.expovariate(1 / (256 << 10))) + 1)
        with open(os.path.join(d, f"blob{files:05d}"), "wb") as f:
            left = size
            while left:
                n = min(left, 1 << 20)
                if rng.random() < 0.45:
                    f.write(rng.randbytes(n))
                else:
                    o = rng.randrange(0, (1 << 22) - n)
                    f.write(pool[o:o + n])
                left -= n
        written += size
        files += 1
    return TreeStats(files=files, dirs=files // 200 + 1, symlinks=0, hardlinks=0, bytes=written)


def make_c_project(root: str, files: int = 2000, modules: int = 150, seed: int = 3) -> int:
    """A C program of exactly `files` files for a realistic build's COPY + `make`: a Makefile, main.c,
    `modules` .c files and headers for the rest (each header a few small inline functions; each module
    includes a dozen of them). `make -j` builds `app`, which prints one checksum. Returns the file count."""
    if files < modules + 3:
        raise ValueError(f"{files} files cannot hold {modules} modules, main.c, a Makefile and a header")
    rng = random.Random(seed)
    headers = files - modules - 2
    os.makedirs(os.path.join(root, "include"), exist_ok=True)
    os.makedirs(os.path.join(root, "src"), exist_ok=True)
    for h in range(headers):
        body = [f"#ifndef H{h:04d}_H\n#define H{h:04d}_H\n#include <stdint.h>\n"]
        for k in range(3):
            a, b, c = rng.randrange(3, 97), rng.randrange(1, 1 << 16), rng.randrange(1, 31)
            body.append(f"static inline uint64_t h{h:04d}_{k}(uint64_t x) {{\n"
                        f"    for (int i = 0; i < {a}; i++) x = (x * {b}u + i) ^ (x >> {c});\n"
                        f"    return x;\n}}\n")
        body.append("#endif\n")
        with open(os.path.join(root, "include", f"h{h:04d}.h"), "w") as f:
            f.write("".join(body))
    for m in range(modules):
        chosen = rng.sample(range(headers), min(12, headers))
        lines = [f'#include "h{h:04d}.h"\n' for h in chosen]
        lines.append(f"uint64_t mod{m:03d}(uint64_t x) {{\n")
        for h in chosen:
            lines.append(f"    x = h{h:04d}_{rng.randrange(3)}(x + {m});\n")
        lines.append("    return x;\n}\n")
        with open(os.path.join(root, "src", f"mod{m:03d}.c"), "w") as f:
            f.write("".join(lines))
    with open(os.path.join(root, "src", "main.c"), "w") as f:
        f.write("#include <stdint.h>\n#include <stdio.h>\n"
                + "".join(f"uint64_t mod{m:03d}(uint64_t);\n" for m in range(modules))
                + "int main(void) {\n    uint64_t x = 1;\n"
                + "".join(f"    x = mod{m:03d}(x);\n" for m in range(modules))
                + '    printf("checksum %016llx\\n", (unsigned long long)x);\n    return 0;\n}\n')
    with open(os.path.join(root, "Makefile"), "w") as f:
        f.write("CFLAGS ?= -O2 -Iinclude\nOBJS := $(patsubst %.c,%.o,$(wildcard src/*.c))\n\n"
                "app: $(OBJS)\n\t$(CC) -o $@ $^\n\n%.o: %.c\n\t$(CC) $(CFLAGS) -c -o $@ $<\n")
    count = sum(len(names) for _, _, names in os.walk(root))
    if count != files:
        raise AssertionError(f"the C project has {count} files, not {files}")
    return count
