"""Which values kiln never writes into a log line or an image: `--secret` values, and the values of build
args whose names look secret (BuildKit's SecretsUsedInArgOrEnv rule: API_TOKEN, DB_PASSWORD, AUTH...).

Every other build-arg value appears where `docker build` writes it: in the log (`FROM $BASE` shows the
image it pulls) and in the image history (`RUN |1 VERSION=1.2.3 ...`). A secret-looking build arg is
masked as `***` in both, with a warning that recommends `--secret`: a build arg is meant to be seen.
"""
from __future__ import annotations

import logging
import os
import re
import stat
import urllib.parse
from collections.abc import Mapping

from executor.dockerfile.args import looks_secret
from executor.logs import SecretRedactor
from executor.options import Options

log = logging.getLogger(__name__)

SECRET_FILE_LIMIT = 1 << 20  # file secrets are read up to 1 MiB for masking


def secret_build_args(build_args: Mapping[str, str]) -> list[str]:
    """The names of the build args whose values are masked."""
    return sorted(name for name in build_args if looks_secret(name))


def git_credential_values(context: str, env: Mapping[str, str]) -> list[str]:
    """A git context's credentials (executor.engine.gitspec.credentials decides which are used): GIT_TOKEN,
    GIT_PASSWORD, GIT_USERNAME when it goes without a password (then it is the token), and the password (or
    lone user name) in the context URL. Masked whatever the context, as kaniko reads them from the environment."""
    values = [env.get("GIT_TOKEN", ""), env.get("GIT_PASSWORD", "")]
    if not env.get("GIT_PASSWORD"):
        values.append(env.get("GIT_USERNAME", ""))
    location = context.partition("#")[0]
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@", location)
    if match:
        user, sep, password = match.group(1).partition(":")
        secret = password if sep else user
        values += [secret, urllib.parse.unquote(secret)]
    return [v for v in values if v]


def masked_values(opts: Options, env: Mapping[str, str]) -> list[str]:
    """The values to mask: secret-looking build args', every --secret's (files up to 1 MiB; FIFOs and
    devices are never read, a missing file is the RUN's error to report) and a git context's credentials."""
    values = [opts.build_args[name] for name in secret_build_args(opts.build_args) if opts.build_args[name]]
    values += git_credential_values(opts.context, env)
    for secret in opts.secrets.values():
        if secret.type == "env":
            values.append(env.get(secret.source, ""))
            continue
        try:
            if not stat.S_ISREG(os.stat(secret.source).st_mode):
                continue
            with open(secret.source, "rb") as fh:
                values.append(fh.read(SECRET_FILE_LIMIT).decode("utf-8", errors="replace"))
        except OSError:
            continue
    return [v for v in values if v]


def warn_secret_build_args(opts: Options) -> None:
    for name in secret_build_args(opts.build_args):
        log.warning("build arg %s looks like a secret (BuildKit's SecretsUsedInArgOrEnv rule): its value is "
                    "masked in the log and the image history; pass it with --secret id=%s,env=%s and read it "
                    "in RUN --mount=type=secret,id=%s instead", name, name, name, name)


def redactor(values: list[str]) -> SecretRedactor:
    """A redactor of its own for the image history (the image never depends on the log's state)."""
    r = SecretRedactor()
    for value in values:
        r.register_value(value)
    return r
