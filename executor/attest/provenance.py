"""SLSA provenance as BuildKit writes it (moby/buildkit solver/llbsolver/provenance/predicate.go,
solver/llbsolver/provenance.go, provenance/types/types.go; the fields are described in
docs/attestations/slsa-definitions.md): a v1 predicate (BuildKit's default since it switched to SLSA 1), or
v0.2 with `version=v0.2`, converted field by field as BuildKit's ConvertToSLSA02 does.

What kiln fills in:
* buildType: BuildKit's (the structure is BuildKit's);
* configSource: the git URL (`#ref`) and commit of a git context, and `path`, the Dockerfile; for a local
  context (where BuildKit gives no digest) the digest is the Dockerfile's own sha256;
* request: frontend `dockerfile.v0`, args `build-arg:NAME` (secret-looking names omitted, see
  executor.masking), `label:NAME`, `target`; `locals` for a local context; `secrets` (ids only) with mode=max;
  mode=min drops build args, labels and secrets and marks the request incomplete, as BuildKit's scrubMinRequest;
* resolvedDependencies: every image used (bases, COPY --from and RUN --mount from= images) as
  `pkg:docker/NAME@TAG?platform=...` with the digest its reference resolved to; the git context;
* builder id (`builder-id=` or the CI job's URL), invocation id, start and finish times, hermetic (no RUN with
  network), completeness (a local context is not tracked), reproducible;
* mode=max: the Dockerfile itself (buildkit_metadata.source), kiln's steps in buildConfig (BuildKit writes its
  LLB there; kiln has no LLB, so each step is the Dockerfile instruction, its stage, its input step and
  whether the layer cache answered it) and the layers each step left (buildkit_metadata.layers, BuildKit's
  "step<N>:0" -> layer chain).
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from packageurl import PackageURL

BUILD_TYPE_V1 = "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
BUILD_TYPE_V02 = "https://mobyproject.org/buildkit@v1"
PREDICATE_V1 = "https://slsa.dev/provenance/v1"
PREDICATE_V02 = "https://slsa.dev/provenance/v0.2"
FRONTEND = "dockerfile.v0"


@dataclass(frozen=True)
class ImageUse:
    """An image the build read: `ref` as written (after ARG expansion), its platform, the digest it resolved to."""
    ref: str
    platform: str
    digest: str


@dataclass(frozen=True)
class Step:
    """One build step as provenance mode=max records it (buildConfig, with its Dockerfile lines and layer chain);
    made from the build report's steps."""
    id: str                       # "step3"
    stage: str                    # the stage's name or index
    instruction: str              # the Dockerfile text (secret values masked)
    start_line: int
    end_line: int
    cached: bool | None           # None: no layer cache
    inputs: tuple[str, ...] = ()  # "step2:0"
    layers: tuple[dict, ...] = () # the layer chain (descriptors) of the image after the step


@dataclass
class ProvenanceInput:
    """What the provenance predicate is written from, gathered by the engine after the build: builder, times,
    Dockerfile, context, base images, args and steps."""
    builder_id: str
    invocation_id: str
    started: str                  # RFC 3339
    finished: str
    dockerfile_path: str
    dockerfile: bytes
    builder_platform: str
    context_git: tuple[str, str] | None = None     # (url#ref, commit) of a git context
    local_context: bool = True
    vcs: dict[str, str] = field(default_factory=dict)   # {"source": url, "revision": commit}: a hint
    images: list[ImageUse] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    secrets: list[str] = field(default_factory=list)
    network: bool = False         # a RUN that could reach the network ran
    reproducible: bool = False
    steps: list[Step] = field(default_factory=list)


def image_purl(ref: str, platform: str | None = None) -> str:
    """BuildKit's purl.RefToPURL: `pkg:docker/<namespace>/<name>@<tag>?digest=...&platform=...`, the name in
    its familiar form (docker.io/library/ dropped, docker.io/ dropped)."""
    from executor.registry.reference import Reference

    r = Reference.parse(ref)
    name = r.repository
    if r.registry in ("index.docker.io", "docker.io", "registry-1.docker.io"):
        name = name.removeprefix("library/")
    else:
        name = f"{r.registry}/{name}"
    namespace, _, bare = name.rpartition("/")
    qualifiers = {}
    if r.digest:
        qualifiers["digest"] = r.digest
    version = r.tag if r.tag or r.digest else "latest"
    if platform:
        qualifiers["platform"] = platform
    purl = PackageURL(type="docker", namespace=namespace or None, name=bare, version=version or None,
                      qualifiers=qualifiers or None)
    # packageurl-go (BuildKit) escapes a qualifier value with url.PathEscape: "/" becomes %2F
    return purl.to_string().replace("platform=" + platform, "platform=" + platform.replace("/", "%2F")) \
        if platform else purl.to_string()


def _digest_set(digest: str) -> dict[str, str]:
    algorithm, _, hex_ = digest.partition(":")
    return {algorithm: hex_}


def _commit_set(commit: str) -> dict[str, str]:
    return {"sha256" if len(commit) == 64 else "sha1": commit}


def _args(p: ProvenanceInput) -> dict[str, str]:
    args = {f"build-arg:{k}": v for k, v in sorted(p.build_args.items())}
    args.update({f"label:{k}": v for k, v in sorted(p.labels.items())})
    if p.target:
        args["target"] = p.target
    return args


def predicate_v1(p: ProvenanceInput, mode: str) -> dict:
    deps = [{"uri": image_purl(i.ref, i.platform), "digest": _digest_set(i.digest)} for i in p.images]
    config_source: dict = {}
    if p.context_git:
        url, commit = p.context_git
        config_source["uri"] = url
        config_source["digest"] = _commit_set(commit)
        deps.append({"uri": url.partition("#")[0], "digest": _commit_set(commit)})
    else:
        config_source["digest"] = {"sha256": hashlib.sha256(p.dockerfile).hexdigest()}
    config_source["path"] = p.dockerfile_path
    request: dict = {"frontend": FRONTEND}
    args = _args(p)
    complete_request = True
    if mode == "min":
        kept = {k: v for k, v in args.items() if not k.startswith(("build-arg:", "label:"))}
        complete_request = kept == args
        args = kept
    if args:
        request["args"] = args
    if mode == "max" and p.secrets:
        request["secrets"] = [{"id": s} for s in sorted(p.secrets)]
    if p.local_context:
        request["locals"] = [{"name": "context"}, {"name": "dockerfile"}]
    internal: dict = {"builderPlatform": p.builder_platform}
    buildkit_metadata: dict = {}
    if p.vcs:
        buildkit_metadata["vcs"] = dict(p.vcs)
    if mode == "max":
        internal["buildConfig"] = {"steps": [_step(s) for s in p.steps]}
        buildkit_metadata["source"] = {
            "locations": {s.id: {"locations": [{"ranges": [{"start": {"line": s.start_line},
                                                            "end": {"line": s.end_line}}]}]}
                          for s in p.steps if s.start_line},
            "infos": [{"filename": p.dockerfile_path, "language": "Dockerfile",
                       "data": base64.b64encode(p.dockerfile).decode()}],
        }
        layers = {f"{s.id}:0": [list(s.layers)] for s in p.steps if s.layers}
        if layers:
            buildkit_metadata["layers"] = layers
    complete_deps = not p.local_context
    metadata: dict = {"invocationID": p.invocation_id, "startedOn": p.started, "finishedOn": p.finished,
                      "buildkit_metadata": buildkit_metadata,
                      "buildkit_completeness": {"request": complete_request, "resolvedDependencies": complete_deps}}
    if complete_deps and not p.network:
        metadata["buildkit_hermetic"] = True
    if p.reproducible:
        metadata["buildkit_reproducible"] = True
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE_V1,
            "externalParameters": {"configSource": config_source, "request": request},
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {"builder": {"id": p.builder_id}, "metadata": metadata},
    }


def _step(s: Step) -> dict:
    out: dict = {"id": s.id, "stage": s.stage, "instruction": s.instruction}
    if s.inputs:
        out["inputs"] = list(s.inputs)
    if s.cached is not None:
        out["cacheHit"] = s.cached
    return out


def to_v02(v1: dict) -> dict:
    """BuildKit's ConvertToSLSA02, field by field."""
    bd, rd = v1["buildDefinition"], v1["runDetails"]
    cs = bd["externalParameters"]["configSource"]
    meta1 = rd.get("metadata") or {}
    out: dict = {
        "builder": {"id": rd["builder"]["id"]},
        "buildType": BUILD_TYPE_V02,
        "materials": [{"uri": d["uri"], "digest": d["digest"]} for d in bd.get("resolvedDependencies") or []],
        "invocation": {
            "configSource": {k2: cs[k1] for k1, k2 in (("uri", "uri"), ("digest", "digest"), ("path", "entryPoint"))
                             if k1 in cs},
            "parameters": bd["externalParameters"]["request"],
            "environment": {"platform": bd["internalParameters"]["builderPlatform"]},
        },
    }
    if "buildConfig" in bd["internalParameters"]:
        out["buildConfig"] = bd["internalParameters"]["buildConfig"]
    completeness = meta1.get("buildkit_completeness", {})
    metadata: dict = {
        "buildInvocationID": meta1.get("invocationID", ""),
        "buildStartedOn": meta1.get("startedOn"),
        "buildFinishedOn": meta1.get("finishedOn"),
        "completeness": {"parameters": completeness.get("request", False), "environment": True,
                         "materials": completeness.get("resolvedDependencies", False)},
        "reproducible": meta1.get("buildkit_reproducible", False),
        "https://mobyproject.org/buildkit@v1#metadata": meta1.get("buildkit_metadata", {}),
    }
    if meta1.get("buildkit_hermetic"):
        metadata["https://mobyproject.org/buildkit@v1#hermetic"] = True
    out["metadata"] = metadata
    return out


def predicate(p: ProvenanceInput, mode: str = "min", version: str = "v1") -> tuple[str, dict]:
    """(predicate type, predicate) for `mode` min|max and SLSA `version` v1|v0.2."""
    v1 = predicate_v1(p, mode)
    if version == "v0.2":
        return PREDICATE_V02, to_v02(v1)
    return PREDICATE_V1, v1
