"""Build arguments as docker scopes them.

- `--build-arg K=V` sets K; a bare `--build-arg K` takes K from kiln's own environment (unset if absent).
- ARGs before the first FROM are global: they expand FROM lines, and a stage sees one only after
  re-declaring it (`ARG K` without a default takes the global's value).
- Inside a stage, `ARG K=default` is K's value unless a build arg overrides it.
- The proxy args are predefined: usable without a declaration, and kept out of the history unless declared.
- The platform args (TARGETPLATFORM, BUILDARCH, ...) are predefined in the global scope, and in a stage after
  `ARG TARGETARCH` and friends.
- ENV wins over an earlier ARG of the same name, in expansion and in RUN's environment (kaniko #3344);
  an ARG declared after the ENV wins until the next ENV of that name (BuildKit's dispatchArg adds the
  value to the stage's environment). The image config only ever holds ENV values.
- ARGs are in RUN's environment but never in the image config.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

log = logging.getLogger(__name__)

# BuildKit's SecretsUsedInArgOrEnv lint rule (frontend/dockerfile/dockerfile2llb/validations.go,
# getSecretsRegex): a name whose whole, first or last `_`-separated word is one of these looks secret,
# unless such a word is one of the allowed ones.
_SECRET_WORDS = ("apikey", "auth", "credential", "credentials", "key", "password", "pword", "passwd", "secret",
                 "token")
_ALLOWED_WORDS = ("public", "file", "version")
_SECRET_NAME = re.compile(r"(?i)(?:_|^)(?:" + "|".join(_SECRET_WORDS) + r")(?:_|$)")
_ALLOWED_NAME = re.compile(r"(?i)(?:_|^)(?:" + "|".join(_ALLOWED_WORDS) + r")(?:_|$)")


def looks_secret(name: str) -> bool:
    """Whether an ARG or ENV name looks like it holds a secret (API_TOKEN, db_password, AUTH), by BuildKit's
    SecretsUsedInArgOrEnv rule (PUBLIC_KEY, KEY_FILE, TOKEN_VERSION do not)."""
    return bool(_SECRET_NAME.search(name)) and not _ALLOWED_NAME.search(name)


PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class PlatformTriple:
    """os/architecture/variant of the target or the build platform, from which the automatic platform ARGs
    (TARGETPLATFORM, BUILDARCH...) are made."""
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def platform_args(target: PlatformTriple, build: PlatformTriple) -> dict[str, str]:
    return {
        "TARGETPLATFORM": str(target), "TARGETOS": target.os, "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant,
        "BUILDPLATFORM": str(build), "BUILDOS": build.os, "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant,
    }


def parse_build_args(pairs: list[str] | Mapping[str, str | None],
                     environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`K=V` pairs (or a mapping with None for bare K) -> values; bare K reads the environment."""
    environ = os.environ if environ is None else environ
    items = pairs.items() if isinstance(pairs, Mapping) else [
        (p.split("=", 1)[0], p.split("=", 1)[1] if "=" in p else None) for p in pairs]
    values: dict[str, str] = {}
    for key, value in items:
        if value is None:
            if key in environ:
                values[key] = environ[key]
            continue
        values[key] = value
    return values


@dataclass
class BuildArgs:
    """The build args given on the command line, and which of them a stage consumed."""
    given: dict[str, str]
    predefined: dict[str, str] = field(default_factory=dict)   # platform args
    consumed: set[str] = field(default_factory=set)

    def warn_unconsumed(self) -> list[str]:
        unused = sorted(k for k in self.given if k not in self.consumed and k not in PROXY_ARGS)
        if unused:
            log.warning("One or more build-args %s were not consumed", "[" + " ".join(unused) + "]")
        return unused


@dataclass
class GlobalScope:
    """ARGs declared before the first FROM, and the predefined platform args."""
    build_args: BuildArgs
    values: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values.update(self.build_args.predefined)

    def declare(self, name: str, default: str | None) -> None:
        if name in self.build_args.given:
            self.values[name] = self.build_args.given[name]
            self.build_args.consumed.add(name)
        elif default is not None:
            self.values[name] = default
        elif name in self.build_args.predefined:
            self.values[name] = self.build_args.predefined[name]
        else:
            self.values.pop(name, None)


@dataclass
class StageArgs:
    """ARGs in scope inside one stage, in declaration order."""
    build_args: BuildArgs
    global_scope: GlobalScope
    values: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)   # ARG values no later ENV has replaced
    declared: list[str] = field(default_factory=list)         # every declaration, in order (repeats kept)

    def env_set(self, name: str) -> None:
        """An ENV set `name`: from now on it wins over the ARG of that name."""
        self.overrides.pop(name, None)

    def inherit(self) -> "StageArgs":
        """The scope a stage built FROM this one starts with (BuildKit's dispatchState.init: the child starts
        from the parent's state, whose environment holds every ARG value the parent declared, and, since
        BuildKit 0.15 (moby/buildkit#5048), its list of declared ARGs too). Only the FROM chain passes values
        on: a sibling stage starts empty."""
        return StageArgs(self.build_args, self.global_scope, dict(self.values), dict(self.overrides),
                         list(self.declared))

    def declare(self, name: str, default: str | None) -> str | None:
        """`ARG name[=default]`; `default` is already expanded by the caller.

        Declared without a value and with nothing to take (a build arg, the global ARG, a predefined one), the
        ARG keeps the value it already has in this stage (declared earlier, or inherited from the stage this
        one is built FROM), as BuildKit's dispatchArg adds nothing to the environment then; with none it is in
        scope but unset: docker leaves it out of the environment.

        Returns the value this declaration took (None when it took none and kept what it had), which is what
        BuildKit writes in the ARG's history (`ARG NAME=value`, or `ARG NAME`)."""
        taken: str | None = None
        if name in self.build_args.given:
            taken = self.build_args.given[name]
            self.build_args.consumed.add(name)
        elif default is not None:
            taken = default
        elif name in self.global_scope.values:
            taken = self.global_scope.values[name]
        elif name in self.build_args.predefined:
            taken = self.build_args.predefined[name]
        if taken is not None:
            self.values[name] = taken
        self.declared.append(name)
        if name in self.values:
            self.overrides[name] = self.values[name]
        return taken

    def proxy_values(self) -> dict[str, str]:
        return {k: v for k, v in self.build_args.given.items() if k in PROXY_ARGS and k not in self.values}

    def expansion_env(self, image_env: Mapping[str, str]) -> dict[str, str]:
        """What `$NAME` sees in a stage instruction: ARGs, then ENV on top (ENV wins)."""
        env = dict(self.values)
        env.update(image_env)
        env.update(self.overrides)
        return env

    def run_env(self, image_env: Mapping[str, str]) -> dict[str, str]:
        """RUN's environment: proxy args, declared ARGs, then the image ENV (which wins)."""
        env = self.proxy_values()
        env.update(self.values)
        env.update(image_env)
        env.update(self.overrides)
        return env

    def history_args(self, image_env: Mapping[str, str]) -> list[tuple[str, str]]:
        """The ARGs BuildKit lists in a RUN's history (`RUN |2 A=1 B=2 ...`): each declared ARG once, at its
        first declaration, with the value the stage's environment holds now (an ENV's when it won), as
        BuildKit v0.18.0's runCommandString (moby/buildkit#5508; before, once per declaration)."""
        env = self.expansion_env(image_env)
        return [(k, env.get(k, "")) for k in dict.fromkeys(self.declared)]
