"""The parity cases: `cases/<name>/` holds a Dockerfile and its context, an optional `case.yaml` (how to
build: args, target, secrets, generated tars, capabilities) and an optional `expect.yaml` (differences
accepted, each with its reason, or `pending:` naming a known kiln bug)."""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field

import yaml

CASES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
CONTEXT_MTIME = 1_600_000_000      # every context file gets this mtime, so COPY'd mtimes are comparable
SIDECARS = ("case.yaml", "expect.yaml")


def engine_version(text: str) -> tuple[int, ...]:
    """(26, 1, 5) of "26.1.5+dfsg1": the numeric release of a docker engine version."""
    numbers = re.match(r"\d+(?:\.\d+)*", text.strip())
    if not numbers:
        raise ValueError(f"not a docker version: {text!r}")
    return tuple(int(n) for n in numbers.group(0).split("."))


_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}


def version_matches(constraint: str, version: tuple[int, ...]) -> bool:
    """`<28`, `>=26.1,<28`: every comma-separated comparison holds (versions compared numerically, a
    shorter one padded with zeros)."""
    for part in constraint.split(","):
        m = re.fullmatch(r"\s*(<=|>=|==|<|>)\s*(\d+(?:\.\d+)*)\s*", part)
        if not m:
            raise ValueError(f"bad docker version constraint {constraint!r} (e.g. '<28', '>=26,<28')")
        bound = engine_version(m.group(2))
        width = max(len(bound), len(version))
        pad = lambda v: v + (0,) * (width - len(v))
        if not _COMPARE[m.group(1)](pad(version), pad(bound)):
            return False
    return True


@dataclass(frozen=True)
class Accepted:
    subject: str          # a path (no leading '/') or config.<Field> / layers / history
    attribute: str | None  # None: any attribute of the subject
    reason: str
    optional: bool = False  # a difference that comes and goes between runs (the reason says why)
    docker: str | None = None   # the reference versions that show it ("<28"); None: every version

    def applies(self, version: tuple[int, ...]) -> bool:
        return self.docker is None or version_matches(self.docker, version)


@dataclass
class Case:
    name: str
    directory: str
    args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    tars: dict[str, str] = field(default_factory=dict)        # output name -> directory of the context
    tars_without_dirs: list[str] = field(default_factory=list)  # tars holding no directory entries
    caps: dict[str, str] = field(default_factory=dict)        # context path -> setcap text
    modes: dict[str, int] = field(default_factory=dict)       # context path -> mode (git keeps only 644/755)
    hardlinks: dict[str, str] = field(default_factory=dict)   # new context path -> existing one (git has none)
    mkdirs: list[str] = field(default_factory=list)           # empty context directories (git keeps none)
    # symlinks made in the copy only: one to an absolute directory (lib -> /usr/lib) in the source tree
    # would lead pytest's collection and other tools into the machine's own directory
    symlinks: dict[str, str] = field(default_factory=dict)
    accepted: list[Accepted] = field(default_factory=list)
    pending: str | None = None
    pending_subjects: list[str] = field(default_factory=list)   # the differences the pending bug makes
    # subjects the bug makes only against some docker versions: subject -> constraint ("<28")
    pending_versioned: dict[str, str] = field(default_factory=dict)
    debian: bool = False
    onbuild: bool = False       # FROM ${ONBUILD_BASE}: a registry image with ONBUILD triggers (conftest)
    http: bool = False          # uses the suite's HTTP server (build arg HTTP=http://127.0.0.1:PORT)
    docker_replace: dict[str, str] = field(default_factory=dict)   # Dockerfile edits for docker 20.10
    dockerfile_text: str = ""
    kiln_args: list[str] = field(default_factory=list)        # extra executor flags (kaniko defaults differ)
    fail: bool = False          # both builders must refuse the Dockerfile (a RUN's exit status)
    production: "Expectations | None" = None   # expect.yaml `production:` (test_parity_production.py only)
    error: list[str] = field(default_factory=list)   # fail: what kiln's error line must say, in kiln's words
    output: list[str] = field(default_factory=list)  # fail: what kiln's output must show before it (a RUN's own)
    docker: str | None = None   # the reference versions whose frontend has the case's syntax (">=28")

    def runs_with(self, version: tuple[int, ...]) -> bool:
        """Whether docker of this version can build the case at all (its frontend knows the syntax)."""
        return self.docker is None or version_matches(self.docker, version)

    def pending_for(self, version: tuple[int, ...]) -> set[str]:
        """The subjects the pending bug makes against a docker of this version."""
        return set(self.pending_subjects) | {s for s, c in self.pending_versioned.items()
                                             if version_matches(c, version)}

    def build_args(self, base: str, debian: str | None, http: str | None = None,
                   onbuild: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
        out = {"BASE": base, **{k: v for k, v in (extra or {}).items() if "${" + k + "}" in self.dockerfile_text},
               **self.args}
        if onbuild and self.onbuild:
            out["ONBUILD_BASE"] = onbuild
        if debian and self.debian:
            out["DEBIAN"] = debian
        if http and self.http:
            out["HTTP"] = http
        return out

    def make_context(self, dest: str, for_docker: bool = False) -> str:
        """A copy of the case's context with generated files and fixed mtimes; docker's copy gets the
        case's `docker_replace` edits of its Dockerfile (flags dockerd 20.10's frontend lacks)."""
        shutil.copytree(self.directory, dest, symlinks=True,
                        ignore=lambda d, names: [n for n in names if d == self.directory and n in SIDECARS])
        if for_docker and self.docker_replace:
            path = os.path.join(dest, "Dockerfile")
            with open(path) as f:
                text = f.read()
            for old, new in self.docker_replace.items():
                if old not in text:
                    raise ValueError(f"{self.name}: docker_replace {old!r} is not in the Dockerfile")
                text = text.replace(old, new)
            with open(path, "w") as f:
                f.write(text)
        for path in self.mkdirs:
            os.makedirs(os.path.join(dest, path), exist_ok=True)
        for path, target in self.symlinks.items():
            os.makedirs(os.path.dirname(os.path.join(dest, path)), exist_ok=True)
            os.symlink(target, os.path.join(dest, path))
        for new, existing in self.hardlinks.items():
            # git keeps no empty directories: a link's parent may exist only in the case's description
            os.makedirs(os.path.dirname(os.path.join(dest, new)), exist_ok=True)
            os.link(os.path.join(dest, existing), os.path.join(dest, new))
        for path, mode in self.modes.items():
            os.chmod(os.path.join(dest, path), mode)
        for path, text in self.caps.items():
            subprocess.run(["setcap", text, os.path.join(dest, path)], check=True, capture_output=True)
        for out, src in self.tars.items():     # last: the tars hold the modes and capabilities above
            _make_tar(os.path.join(dest, src), os.path.join(dest, out), dirs=out not in self.tars_without_dirs)
        for dirpath, dirnames, filenames in os.walk(dest):
            for n in dirnames + filenames:
                os.utime(os.path.join(dirpath, n), (CONTEXT_MTIME, CONTEXT_MTIME), follow_symlinks=False)
        os.utime(dest, (CONTEXT_MTIME, CONTEXT_MTIME))
        return dest


@dataclass
class Expectations:
    """expect.yaml's `production:` section: what differs only when kiln runs as PID 1 of its executor image on
    `/` (test_parity_production.py), on top of the case's own `accept:`; a `pending:` here replaces the case's.
    `absent:` names accepted differences of the case that do not occur on that path (each with its reason).
    `pending_error`: the text kiln's output must hold while a `kiln-build-fails` bug is pending."""
    accepted: list[Accepted] = field(default_factory=list)
    absent: list[Accepted] = field(default_factory=list)
    pending: str | None = None
    pending_subjects: list[str] = field(default_factory=list)
    pending_versioned: dict[str, str] = field(default_factory=dict)
    pending_error: str | None = None


def _expectations(name: str, expect: dict) -> tuple[list[Accepted], str | None, list[str], dict[str, str]]:
    """(accepted, pending, pending_subjects, pending_versioned) of an expect.yaml mapping (or its `production:`
    section); a subject or an accepted difference may hold only for some docker versions (`docker: ">=28"`)."""
    pending = expect.get("pending")
    pending_subjects: list[str] = []
    pending_versioned: dict[str, str] = {}
    for item in expect.get("pending_subjects") or []:
        if isinstance(item, dict):     # {subject: history.5, docker: ">=28"}
            version_matches(str(item["docker"]), (0,))
            pending_versioned[str(item["subject"]).lstrip("/")] = str(item["docker"])
        else:
            pending_subjects.append(str(item).lstrip("/"))
    if pending and not pending_subjects:
        raise ValueError(f"{name}/expect.yaml: pending without pending_subjects (the differences it makes)")
    accepted = []
    for item in expect.get("accept") or []:
        if not item.get("reason"):
            raise ValueError(f"{name}/expect.yaml: an accepted difference without a reason: {item}")
        docker = str(item["docker"]) if item.get("docker") is not None else None
        if docker is not None:
            version_matches(docker, (0,))      # a malformed constraint fails loading, not a run
        accepted.append(Accepted(item["subject"].lstrip("/"), item.get("attribute"), item["reason"],
                                 bool(item.get("optional")), docker))
    return accepted, pending, pending_subjects, pending_versioned


def _make_tar(src: str, out: str, dirs: bool = True) -> None:
    """A tar of `src` (gzip without a header timestamp, so docker's and kiln's copies are the same bytes)."""
    suffix = os.path.splitext(out)[1]
    mode = {".bz2": "w:bz2", ".xz": "w:xz"}.get(suffix, "w")

    def fixed(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.mtime, ti.uname, ti.gname = CONTEXT_MTIME - 86400, "", ""
        ti.uid = ti.gid = 0
        if ti.name.endswith("owned"):
            ti.uid, ti.gid = 1000, 50
        path = os.path.join(src, ti.name)
        for name in os.listxattr(path, follow_symlinks=False):   # as GNU tar --xattrs: SCHILY.xattr.*
            value = os.getxattr(path, name, follow_symlinks=False)
            ti.pax_headers[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
        return ti

    plain = out + ".plain" if suffix in (".gz", ".tgz") else out
    with tarfile.open(plain, mode, format=tarfile.PAX_FORMAT) as tf:
        if dirs:
            for name in sorted(os.listdir(src)):
                tf.add(os.path.join(src, name), arcname=name, filter=fixed)
        else:       # every file and link, but no directory entry: their parents are implied
            for dirpath, dirnames, filenames in sorted(os.walk(src)):
                for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                    path = os.path.join(dirpath, name)
                    tf.add(path, arcname=os.path.relpath(path, src), recursive=False, filter=fixed)
    if plain != out:
        with open(plain, "rb") as f, open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            shutil.copyfileobj(f, gz)
        os.unlink(plain)


def load_cases(cases_dir: str = CASES_DIR) -> list[Case]:
    """Every case under `cases_dir`; ValueError for a case the suite cannot judge honestly."""
    cases = []
    for name in sorted(os.listdir(cases_dir)):
        directory = os.path.join(cases_dir, name)
        if not os.path.isfile(os.path.join(directory, "Dockerfile")):
            continue
        case = Case(name, directory)
        spec = _yaml(os.path.join(directory, "case.yaml"))
        case.args = {k: str(v) for k, v in (spec.get("args") or {}).items()}
        case.target = spec.get("target")
        case.secrets = dict(spec.get("secrets") or {})
        case.tars = dict(spec.get("tars") or {})
        case.tars_without_dirs = [str(t) for t in spec.get("tars_without_dirs") or []]
        case.caps = dict(spec.get("caps") or {})
        case.mkdirs = [str(p) for p in spec.get("mkdirs") or []]
        case.symlinks = {str(k): str(v) for k, v in (spec.get("symlinks") or {}).items()}
        case.hardlinks = {str(k): str(v) for k, v in (spec.get("hardlinks") or {}).items()}
        case.modes = {str(k): int(str(v), 8) for k, v in (spec.get("modes") or {}).items()}
        case.fail = bool(spec.get("fail"))
        error = spec.get("error")
        case.error = [str(e) for e in ([error] if isinstance(error, str) else error or [])]
        if case.fail and not [e for e in case.error if e.strip()]:
            raise ValueError(f"{name}/case.yaml: fail: true without error: a case that must fail states what the "
                             "user must read (the instruction, stage, file, image or secret at fault, in kiln's "
                             "words), as a list of substrings of kiln's error line")
        case.output = [str(o) for o in spec.get("output") or []]
        if (case.error or case.output) and not case.fail:
            raise ValueError(f"{name}/case.yaml: error:/output: without fail: true")
        if spec.get("docker") is not None:
            case.docker = str(spec["docker"])
            version_matches(case.docker, (0,))
        case.kiln_args = [str(a) for a in spec.get("kiln_args") or []]
        case.docker_replace = {str(k): str(v) for k, v in (spec.get("docker_replace") or {}).items()}
        expect = _yaml(os.path.join(directory, "expect.yaml"))
        case.accepted, case.pending, case.pending_subjects, case.pending_versioned = _expectations(name, expect)
        if expect.get("production"):
            section = expect["production"]
            accepted, pending, subjects, versioned = _expectations(name, section)
            absent, _, _, _ = _expectations(name, {"accept": section.get("absent")})
            case.production = Expectations(accepted, absent, pending, subjects, versioned,
                                           section.get("pending_error"))
        with open(os.path.join(directory, "Dockerfile")) as f:
            text = f.read()
        case.dockerfile_text = text
        case.debian = "DEBIAN" in text
        case.http = "${HTTP}" in text
        case.onbuild = "${ONBUILD_BASE}" in text
        cases.append(case)
    return cases


def _yaml(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return yaml.safe_load(f) or {}
CASES: list[Case] = load_cases()
