"""`--sbom` and `--provenance` for one build: the in-toto statements about the built image and the index that
carries them (executor.attest), made from what the build loop, the build report and the context know.

The SBOM is made from the root while it still holds the final image's files: the build loop is asked to
materialize the result (`BuildSettings.materialize`, kaniko's --materialize), so a build whose last steps were
cache hits or metadata only still has the image's files on the root.
"""
from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from executor import masking
from executor.engine.builder import Builder
from executor.engine.context import BuildContext
from executor.engine.report import BuildReport, rfc3339
from executor.image import Image, host_platform
from executor.image.imageindex import Artifact
from executor.image import mediatypes as mt
from executor.options import Options
from executor.registry import Reference

if TYPE_CHECKING:
    from executor.attest.attach import Predicate
    from executor.attest.provenance import ProvenanceInput

log = logging.getLogger(__name__)


def wanted(opts: Options) -> bool:
    return bool(opts.sbom or opts.provenance)


def prepare(image: Image) -> Image:
    """Attestations live in an OCI index: an inherited Docker format becomes OCI (BuildKit turns OCI media
    types on whenever attestations are asked for; an explicit --image-format=docker is refused earlier)."""
    if image.format != mt.OCI:
        log.info("--sbom/--provenance: the image is written with OCI media types (an attestation index needs them)")
        image = image.converted(mt.OCI)
    return image


def kiln_version() -> str:
    try:
        from importlib.metadata import version
        return version("kiln")
    except Exception:
        return "0.1.0"


def make(opts: Options, image: Image, builder: Builder, report: BuildReport, context: BuildContext,
         dockerfile_name: str, dockerfile: bytes, root: str, ignored) -> Artifact:
    """The attestation manifest of `image` (one platform's result, its files still on `root`)."""
    version = kiln_version()
    # the attestation modules load only for a build that asks for attestations (start-up, issue 21)
    from executor.attest.attach import SPDX_PREDICATE, Predicate, attach
    from executor.attest.provenance import predicate

    predicates: list[Predicate] = []
    names = list(opts.destinations)
    if opts.provenance:
        inp = provenance_input(opts, builder, report, context, dockerfile_name, dockerfile, version)
        kind, body = predicate(inp, opts.provenance.mode, opts.provenance.version)
        predicates.append(Predicate(kind, body))
    if opts.sbom:
        predicates.insert(0, Predicate(SPDX_PREDICATE, sbom_document(image, root, names, ignored, version,
                                                                      builder.settings.epoch)))
    artifact = attach(image, predicates, names)
    log.info("attestations for %s (%s): %s (attestation manifest %s)", image.digest, image.config.platform,
             ", ".join(p.type for p in predicates), artifact.descriptor.digest)
    return artifact


def sbom_document(image: Image, root: str, names: list[str], ignored, version: str, epoch: int | None) -> dict:
    from executor.attest.layers import LayerIndex
    from executor.attest.provenance import image_purl
    from executor.attest.sbom import scan
    from executor.attest.sbom.spdx import document

    packages = scan(root, ignored)
    layer_of = LayerIndex(image.layers).layer_of
    name = names[0] if names else "image"
    purl = image_purl(names[0], str(image.config.platform)) if names else ""
    created = rfc3339(epoch if epoch is not None else time.time())    # SPDX: YYYY-MM-DDThh:mm:ssZ, no fraction
    return document(packages, root, name, created, f"kiln-{version}", layer_of=layer_of, image_purl=purl)


def _redacted_url(url: str) -> str:
    """BuildKit's urlutil.RedactCredentials: a URL's password never reaches the provenance."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:xxxxx@{netloc}" if user else netloc, parts.path, parts.query,
                       parts.fragment))


def builder_id(opts: Options, env: dict[str, str]) -> str:
    """`builder-id=`, else the CI job's URL (GitLab's CI_JOB_URL; GitHub Actions' run URL, as buildx sets it),
    else kiln's own URN (SLSA requires an id)."""
    if opts.provenance and opts.provenance.builder_id:
        return opts.provenance.builder_id
    if env.get("CI_JOB_URL"):
        return env["CI_JOB_URL"]
    if env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        return f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return "urn:kiln:executor"


def vcs_hint(context: BuildContext, env: dict[str, str]) -> dict[str, str]:
    """BuildKit's buildkit_metadata.vcs (buildx sends vcs:source and vcs:revision for a local context in a git
    checkout): from the CI's variables, or the context's own .git."""
    if context.git_url:
        return {}
    if env.get("CI_PROJECT_URL") and env.get("CI_COMMIT_SHA"):
        return {"source": _redacted_url(env["CI_PROJECT_URL"]), "revision": env["CI_COMMIT_SHA"]}
    if env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY") and env.get("GITHUB_SHA"):
        return {"source": f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}", "revision": env["GITHUB_SHA"]}
    return _local_git(context.directory)


def _local_git(directory: str) -> dict[str, str]:
    path = directory
    while True:
        if os.path.isdir(os.path.join(path, ".git")):
            break
        parent = os.path.dirname(path)
        if parent == path:
            return {}
        path = parent
    try:
        from dulwich.repo import Repo
        with Repo(path) as repo:
            out = {"revision": repo.head().decode()}
            try:
                url = repo.get_config().get((b"remote", b"origin"), b"url").decode()
                out["source"] = _redacted_url(url)
            except KeyError:
                pass
            return out
    except Exception as e:      # not a usable repository: no hint
        log.debug("no git metadata from %s: %s", path, e)
        return {}


def provenance_input(opts: Options, builder: Builder, report: BuildReport, context: BuildContext,
                     dockerfile_name: str, dockerfile: bytes, version: str) -> ProvenanceInput:
    import uuid

    from executor.attest.provenance import ImageUse, ProvenanceInput, Step

    env = dict(os.environ)
    secret_args = set(masking.secret_build_args(opts.build_args))
    images = []
    origins = getattr(getattr(builder.images, "client", None), "origins", {})
    for key, image in builder.images_pulled.items():
        name, _, platform = key.partition("|")
        try:
            origin = origins.get((str(Reference.parse(name)), platform))
        except ValueError:
            origin = None
        digest = origin.index_digest if origin is not None and origin.index_digest else image.digest
        images.append(ImageUse(name, platform, digest))
    steps, previous = [], ""
    for s in report.steps:
        step_id = f"step{s.number}"
        steps.append(Step(step_id, s.stage, s.instruction, s.start_line, s.end_line,
                          {"hit": True, "miss": False}.get(s.cache), (f"{previous}:0",) if previous else (),
                          tuple(s.chain)))
        previous = step_id
    return ProvenanceInput(
        builder_id=builder_id(opts, env), invocation_id=uuid.uuid4().hex,
        started=rfc3339(report.started), finished=rfc3339(report.finished or time.time()),
        dockerfile_path=dockerfile_name, dockerfile=dockerfile, builder_platform=str(host_platform()),
        context_git=(_redacted_url(context.git_url), context.git_commit) if context.git_url else None,
        local_context=not context.git_url, vcs=vcs_hint(context, env), images=images,
        build_args={k: v for k, v in opts.build_args.items() if k not in secret_args},
        labels=dict(opts.labels), target=opts.targets[0] if opts.targets else "",
        secrets=sorted(opts.secrets), network=any(s.network for s in report.steps),
        reproducible=bool(opts.reproducible or (opts.provenance and opts.provenance.reproducible)),
        steps=steps)
