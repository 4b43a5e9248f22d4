"""docker buildx's --sbom, --provenance, --metadata-file and --progress as kiln parses them (issue 13)."""
from __future__ import annotations

import pytest

from executor.cli import EXECUTOR_FLAGS, UsageError, format_usage, parse_executor_args, validate_executor
from executor.options import ProvenanceOptions


def parse(*args: str):
    return parse_executor_args(["--no-push", *args], env={}, platform_default="linux/amd64")


@pytest.mark.parametrize("args,sbom", [((), False), (("--sbom",), True), (("--sbom=true",), True),
                                       (("--sbom=false",), False), (("--sbom=disabled=true",), False)])
def test_sbom(args, sbom):
    assert parse(*args).sbom is sbom


@pytest.mark.parametrize("value,expected", [
    (None, None),
    ("", ProvenanceOptions()),                                  # --provenance alone: BuildKit's defaults
    ("=true", ProvenanceOptions(mode="max", version="v1")),
    ("=false", None),
    ("=mode=min", ProvenanceOptions(mode="min")),
    ("=mode=full,version=v0.2", ProvenanceOptions(mode="max", version="v0.2")),
    ('=mode=max,builder-id=https://ci.example/1,reproducible=true',
     ProvenanceOptions(builder_id="https://ci.example/1", reproducible=True)),
])
def test_provenance(value, expected):
    args = () if value is None else (f"--provenance{value}",)
    assert parse(*args).provenance == expected


def test_a_flag_with_a_default_value_never_takes_the_next_word():
    """pflag's NoOptDefVal: `--sbom Dockerfile` is --sbom and a stray argument, as in buildx."""
    with pytest.raises(UsageError, match='unknown command "Dockerfile"'):
        parse("--sbom", "Dockerfile")


@pytest.mark.parametrize("arg,message", [
    ("--sbom=generator=docker/scout-sbom-indexer:1", "a generator image (BuildKit's scanner protocol) is not "
                                                     "supported yet: use --sbom"),
    ("--sbom=maybe", "unknown key(s) maybe"),
    ("--provenance=mode=medium", 'invalid mode "medium" (min or max)'),
    ("--provenance=version=v2", 'invalid provenance SLSA version "v2" (v1 or v0.2)'),
    ("--provenance=mode=max,colour=blue", "unknown key(s) colour"),
    ("--provenance=reproducible=perhaps", "reproducible=perhaps is not a boolean"),
    ("--progress=fancy", 'must be either "auto" or "tty" or "plain" or "json"'),
])
def test_refusals_name_the_value(arg, message):
    with pytest.raises(UsageError) as err:
        parse(arg)
    assert message in str(err.value)


def test_attestations_need_oci_media_types():
    with pytest.raises(UsageError, match="drop --image-format=docker"):
        validate_executor(parse("--sbom", "--image-format=docker", "--tar-path=/x.tar"))
    validate_executor(parse("--sbom", "--image-format=oci", "--oci-layout-path=/x"))


def test_help_shows_the_optional_values():
    usage = format_usage("executor", EXECUTOR_FLAGS)
    assert '--sbom string[="true"]' in usage and '--provenance string[="true"]' in usage
    assert "--progress string" in usage and "(default auto)" in usage
