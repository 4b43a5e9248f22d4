"""The build loop alone, on fakes (issue 11): stage order, root preparation, layers and history, the layer
cache's hit and miss paths, COPY --from sources, and what the final image holds. No file system engine,
registry or process runs here; tests/e2e builds the same paths for real."""
from __future__ import annotations

import json
import os

import pytest

from executor.dockerfile import DockerfileError, parse
from executor.engine.builder import Builder, BuildSettings
from executor.image import Platform
from executor.image import mediatypes as mt
from tests.test_engine.fakes import FakeCache, FakeImages, FakeRun, FakeSnapshotter, fake_layer

AMD64 = Platform.parse("linux/amd64")


@pytest.fixture
def dirs(tmp_path):
    root, work, kiln = tmp_path / "root", tmp_path / "work", tmp_path / "kiln"
    for d in (root, work, kiln):
        d.mkdir()
    return root, work, kiln


def build(dirs, text: str, *, images: FakeImages | None = None, cache: FakeCache | None = None,
          snapshotter: FakeSnapshotter | None = None, context: str | None = None, redact=None, **settings):
    root, work, kiln = dirs
    images = images if images is not None else FakeImages({"base": ["l1", "l2"]})
    snapshotter = snapshotter if snapshotter is not None else FakeSnapshotter()
    run = FakeRun()
    settings = {"platform": AMD64, "build_platform": AMD64, **settings}
    builder = Builder(parse(text.encode(), "Dockerfile"),
                      BuildSettings(root=str(root), kiln_dir=str(kiln), **settings),
                      snapshotter=snapshotter, images=images, cache=cache, redact=redact, context_dir=context,
                      work_dir=str(work), run=run)
    image = builder.build()
    return image, snapshotter, run, builder


def history(image):
    return [(h.created_by, h.empty_layer) for h in image.config.history]


# ---- stages and the root --------------------------------------------------------------------------------


def test_one_stage_extracts_the_base_then_indexes_then_snapshots_each_run(dirs):
    image, snap, run, _ = build(dirs, "FROM base\nRUN echo one\nENV A=1\nRUN echo two\n")
    assert snap.calls == [("extract", fake_layer("base/l1").digest), ("extract", fake_layer("base/l2").digest),
                          ("take_in",), ("snapshot", "walk3"), ("snapshot", "walk4")]
    assert [s.argv for s in run.specs] == [["/bin/sh", "-c", "echo one"], ["/bin/sh", "-c", "echo two"]]
    assert run.specs[1].env["A"] == "1"
    assert len(image.layers) == 4
    assert history(image)[2:] == [("RUN /bin/sh -c echo one # buildkit", False), ("ENV A=1", True),
                                  ("RUN /bin/sh -c echo two # buildkit", False)]


def test_a_run_that_changes_nothing_writes_history_only(dirs):
    image, snap, _, _ = build(dirs, "FROM base\nRUN true\n", snapshotter=FakeSnapshotter(changes=[None]))
    assert len(image.layers) == 2
    assert history(image)[-1] == ("RUN /bin/sh -c true # buildkit", True)


def test_stages_run_in_order_the_root_wiped_between_them_and_copied_from_stages_saved(dirs):
    text = ("FROM base AS builder\nRUN make\n"
            "FROM scratch AS other\nENV X=1\n"
            "FROM base\nCOPY --from=builder /built-by-0 /app/\n")
    image, snap, _, _ = build(dirs, text)
    kinds = [c[0] if c[0] != "save_tree" else c for c in snap.calls]
    assert kinds == ["extract", "extract", "take_in", "snapshot", ("save_tree", "0"),    # stage 0, kept
                     # stage 1 (scratch, ENV only) touches no file: nothing to wipe or extract
                     "wipe", "extract", "extract",                                     # stage 2
                     "snapshot_paths"]
    assert snap.calls[-1] == ("snapshot_paths", ("/app", "/app/built-by-0"))   # the new directory too
    assert history(image)[-1] == ("COPY /built-by-0 /app/ # buildkit", False)
    assert os.path.isfile(os.path.join(dirs[0], "app", "built-by-0"))


def test_a_stage_built_on_the_previous_one_continues_its_root(dirs):
    image, snap, _, _ = build(dirs, "FROM base AS a\nRUN one\nFROM a\nRUN two\n")
    assert [c[0] for c in snap.calls] == ["extract", "extract", "take_in", "snapshot", "snapshot"]
    assert len(image.layers) == 4           # the base's two, stage a's, and this stage's


def test_target_and_skip_unused_stages(dirs):
    text = "FROM base AS a\nRUN a\nFROM base AS b\nRUN b\nFROM base AS c\nRUN c\n"
    image, _, run, _ = build(dirs, text, targets=["b"])
    assert [s.argv[-1] for s in run.specs] == ["a", "b"]           # kaniko builds every stage up to the target
    image, _, run, _ = build(dirs, text, targets=["b"], skip_unused_stages=True)
    assert [s.argv[-1] for s in run.specs] == ["b"]


def test_several_targets_build_them_all_and_the_first_is_the_result(dirs):
    """kaniko's `--target b,a`: the first target is pushed, the others are built too."""
    text = "FROM base AS a\nRUN a\nFROM base AS b\nRUN b\nFROM base AS c\nRUN c\nLABEL c=1\n"
    image, _, run, _ = build(dirs, text, targets=["b", "c"], skip_unused_stages=True)
    assert [s.argv[-1] for s in run.specs] == ["b", "c"]
    assert history(image)[-1] == ("RUN /bin/sh -c b # buildkit", False) and not image.config.labels
    image, _, run, _ = build(dirs, text, targets=["a", "b"])
    assert [s.argv[-1] for s in run.specs] == ["a", "b"]
    assert history(image)[-1] == ("RUN /bin/sh -c a # buildkit", False)


def test_onbuild_triggers_of_the_base_run_first_and_are_not_inherited(dirs):
    images = FakeImages({"base": ["l1"]}, config={"base": {"on_build": ["RUN trigger"]}})
    image, _, run, _ = build(dirs, "FROM base\nRUN own\n", images=images)
    assert [s.argv[-1] for s in run.specs] == ["trigger", "own"]
    assert not image.config.on_build


def test_a_base_that_cannot_be_pulled_names_the_line(dirs):
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: FROM missing: missing: not found"):
        build(dirs, "FROM base\nFROM missing\n")


# ---- the final image ------------------------------------------------------------------------------------


def test_labels_created_time_and_format_of_the_final_image(dirs):
    image, *_ = build(dirs, "FROM base\nLABEL a=1\n", labels={"b": "2"}, epoch=0, image_format=mt.DOCKER)
    assert image.config.labels == {"a": "1", "b": "2"}
    assert image.config.created == "1970-01-01T00:00:00Z"
    assert image.format == mt.DOCKER
    assert all(h.created == "1970-01-01T00:00:00Z" for h in image.config.history[2:])


def test_scratch_gets_buildkits_defaults(dirs):
    image, snap, _, _ = build(dirs, "FROM scratch\nENV A=1\n")
    assert image.config.working_dir == "/" and image.config.env[0].startswith("PATH=/usr/local/sbin")
    assert snap.calls == []


def test_single_snapshot_takes_one_layer_at_the_end(dirs):
    image, snap, _, _ = build(dirs, "FROM base\nRUN a\nRUN b\n", single_snapshot=True)
    assert [c[0] for c in snap.calls] == ["extract", "extract", "take_in", "snapshot"]
    assert history(image)[-3:] == [("RUN /bin/sh -c a # buildkit", True), ("RUN /bin/sh -c b # buildkit", True),
                                   ("single snapshot", False)]


def test_a_stage_of_metadata_alone_extracts_nothing(dirs):
    """Issue 21: ENV, LABEL, USER, CMD... read no file: the base stays off the root, the image is its layers and a
    new config."""
    text = "FROM base\nENV A=1\nLABEL b=2\nUSER nobody\nEXPOSE 80\nCMD [\"x\"]\nARG C=3\nVOLUME /v\nSTOPSIGNAL TERM\n"
    image, snap, run, _ = build(dirs, text)
    assert snap.calls == [] and not run.specs
    assert [l.digest for l in image.layers] == [fake_layer("base/l1").digest, fake_layer("base/l2").digest]
    assert image.config.user == "nobody" and image.config.labels == {"b": "2"}


def test_the_base_goes_onto_the_root_at_the_first_step_that_needs_files(dirs):
    image, snap, run, _ = build(dirs, "FROM base\nENV A=1\nLABEL b=2\nRUN x\nENV C=3\n")
    assert [c[0] for c in snap.calls] == ["extract", "extract", "take_in", "snapshot"]


def test_eager_extraction_gives_the_same_image(dirs):
    text = "FROM base\nENV A=1\nRUN x\nLABEL l=1\n"
    lazy, lazy_snap, _, _ = build(dirs, text, epoch=0)
    eager, eager_snap, _, _ = build(dirs, text, epoch=0, extract="eager")
    assert lazy.manifest_bytes() == eager.manifest_bytes() and lazy.config_bytes() == eager.config_bytes()
    metadata, metadata_snap, _, _ = build(dirs, "FROM base\nENV A=1\n", extract="eager")
    assert [c[0] for c in metadata_snap.calls] == ["extract", "extract", "take_in"]


def test_cache_hits_reach_the_root_only_when_needed(dirs):
    """kaniko's behaviour behind --materialize: steps taken from the cache need not be extracted while nothing
    reads the files; a later step that does gets them all, in order."""
    hits = {"RUN a": ("layer-a", "RUN a-text"), "RUN b": ("layer-b", "RUN b-text")}
    image, snap, run, _ = build(dirs, "FROM base\nRUN a\nRUN b\nLABEL x=1\n", cache=FakeCache(hits=dict(hits)))
    assert snap.calls == [] and not run.specs, "an all-cached build extracted layers nobody reads"
    image, snap, run, _ = build(dirs, "FROM base\nRUN a\nRUN b\nRUN c\n", cache=FakeCache(hits=dict(hits)))
    assert [c[1] if c[0] == "extract" else c[0] for c in snap.calls] == [
        fake_layer("base/l1").digest, fake_layer("base/l2").digest, fake_layer("cached:layer-a").digest,
        fake_layer("cached:layer-b").digest, "take_in", "snapshot"]
    image, snap, run, _ = build(dirs, "FROM base\nRUN a\nRUN b\n", cache=FakeCache(hits=dict(hits)),
                                materialize=True)
    assert [c[0] for c in snap.calls] == ["extract"] * 4 + ["take_in"], "--materialize puts the result on the root"


def test_history_goes_through_the_redactor(dirs):
    image, *_ = build(dirs, "FROM base\nARG TOKEN\nRUN use $TOKEN\n", build_args={"TOKEN": "s3cr3t-value"},
                      redact=lambda text: text.replace("s3cr3t-value", "***"))
    assert history(image)[-1] == ("RUN |1 TOKEN=*** /bin/sh -c use $TOKEN # buildkit", False)


def test_platform_args_come_from_the_settings(dirs):
    _, _, run, _ = build(dirs, "FROM base\nARG TARGETARCH\nARG BUILDPLATFORM\nRUN x\n",
                         platform=Platform.parse("linux/arm64"))
    assert run.specs[0].env["TARGETARCH"] == "arm64" and run.specs[0].env["BUILDPLATFORM"] == "linux/amd64"


# ---- the layer cache ------------------------------------------------------------------------------------


def test_cache_miss_runs_the_step_and_hands_the_cache_its_layer(dirs):
    cache = FakeCache()
    image, snap, run, _ = build(dirs, "FROM base\nRUN a\nENV X=1\n", cache=cache)
    base_digest = FakeImages({"base": ["l1", "l2"]}).pull("base", AMD64).digest
    assert cache.calls[0] == ("begin_stage", 0, "image:" + base_digest)
    assert cache.calls[1:] == [("lookup", 0, "RUN"), ("ran", 0, "RUN", "RUN /bin/sh -c a # buildkit"),
                               ("lookup", 0, "ENV"), ("ran", 0, "ENV", "ENV X=1")]
    assert cache.stored[0][1] == image.layers[-1].digest and cache.stored[1][1] is None
    assert len(run.specs) == 1


def test_cache_hit_extracts_the_cached_layer_instead_of_running(dirs):
    cache = FakeCache(hits={"RUN a": ("layer-a", "RUN /bin/sh -c a # buildkit"), "RUN b": ("", "RUN b-text")})
    image, snap, run, _ = build(dirs, "FROM base\nRUN a\nRUN b\nRUN c\n", cache=cache)
    assert [s.argv[-1] for s in run.specs] == ["c"]
    assert ("extract", fake_layer("cached:layer-a").digest) in snap.calls
    assert [c[0] for c in snap.calls].count("snapshot") == 1
    assert image.layers[2].digest == fake_layer("cached:layer-a").digest
    assert history(image)[2:] == [("RUN /bin/sh -c a # buildkit", False), ("RUN b-text", True),
                                  ("RUN /bin/sh -c c # buildkit", False)]
    assert [c for c in cache.calls if c[0] == "ran"] == [("ran", 0, "RUN", "RUN /bin/sh -c c # buildkit")]


def test_cache_sees_stage_bases_and_from_references(dirs):
    cache = FakeCache()
    build(dirs, "FROM base AS a\nRUN a\nFROM a\nRUN b\nFROM scratch\nCOPY --from=a /built-by-0 /x\n",
          cache=cache)
    assert [s.base for s in cache.starts] == [cache.starts[0].base, "stage:0", "scratch"]
    assert cache.starts[2].identify("a") == "stage:0"
    image_base = cache.starts[2].identify("base")
    assert image_base.startswith("image:sha256:")


def test_copy_from_an_image_unpacks_it_once(dirs):
    images = FakeImages({"base": ["l1"], "other": ["o1", "o2"]})
    image, snap, _, _ = build(dirs, "FROM base\nCOPY --from=other /from-image /a\nCOPY --from=other /from-image /b\n",
                              images=images)
    unpacks = [c for c in snap.calls if c[0] == "unpack_into"]
    assert unpacks == [("unpack_into", (fake_layer("other/o1").digest, fake_layer("other/o2").digest))]
    assert os.path.isfile(os.path.join(dirs[0], "a")) and os.path.isfile(os.path.join(dirs[0], "b"))


def test_copy_heredoc_keeps_quotes_and_apostrophes(dirs):
    """BuildKit expands a COPY heredoc body with quotes left alone (ExpandRaw); an apostrophe once made kiln
    fail with "unexpected end of statement while looking for matching single-quote"."""
    build(dirs, "FROM base\nENV NAME=kiln\nCOPY <<EOF /greeting\nit's \"$NAME\" \\$HOME\nEOF\n")
    with open(os.path.join(dirs[0], "greeting")) as f:
        assert f.read() == "it's \"kiln\" $HOME\n"


def test_annotations_go_into_the_manifest(dirs):
    image, *_ = build(dirs, "FROM base\nLABEL a=1\n", annotations={"org.example/team": "build", "k": "v"})
    manifest = json.loads(image.manifest_bytes())
    assert manifest["annotations"] == {"org.example/team": "build", "k": "v"}
    assert "annotations" not in json.loads(image.config_bytes())


def test_describe_plans_without_touching_the_root(dirs):
    root, work, kiln = dirs
    images = FakeImages({"base": ["l1", "l2"]}, config={"base": {"on_build": ["RUN trigger"]}})
    text = "FROM base AS builder\nRUN make \\\n  all\nFROM scratch\nCOPY --from=builder /out /out\nFROM builder\nENV A=1\n"
    builder = Builder(parse(text.encode(), "Dockerfile"),
                      BuildSettings(root=str(root), kiln_dir=str(kiln), platform=AMD64, build_platform=AMD64,
                                    targets=["1"]),
                      snapshotter=None, images=images, work_dir=str(work))
    digest = images.pull("base", AMD64).digest
    assert builder.describe() == [
        "FROM base AS builder",
        f"  PULL base {digest} (linux/amd64, 2 layers)",
        "  ONBUILD RUN trigger",
        "  RUN make   all",              # the logical line, continuations joined
        "  SAVE stage builder for COPY --from",
        "FROM scratch   # the result",
        "  COPY --from=builder /out /out",
    ]
    assert os.listdir(root) == []
    with pytest.raises(Exception, match="can describe a build, not run it"):
        builder.build()


def test_a_stage_from_a_stage_inherits_its_args_and_a_sibling_does_not(dirs):
    """Issue 20 reproduction 1 (BuildKit's dispatchState.init; the declared list since BuildKit 0.15, #5048)."""
    text = ("FROM base AS parent\nARG NAME=parent\nARG OTHER\nARG CLI=default\nENV FROM_ENV=env-$NAME\n"
            "FROM parent AS child\nRUN one\nARG NAME\nRUN two\n"
            "FROM base AS sibling\nRUN three\n")
    image, _, run, _ = build(dirs, text, targets=["child"], build_args={"CLI": "cli"})
    one = run.specs[0].env
    assert (one.get("NAME"), one.get("CLI"), one.get("FROM_ENV"), "OTHER" in one) == ("parent", "cli", "env-parent",
                                                                                         False)
    assert run.specs[1].env.get("NAME") == "parent", "a bare ARG keeps the inherited value"
    assert history(image)[-3][0] == "RUN |3 NAME=parent OTHER= CLI=cli /bin/sh -c one # buildkit"
    assert "FROM_ENV=env-parent" in image.config.env and not any(e.startswith("NAME=") for e in image.config.env)
    image, _, run, _ = build(dirs, text, build_args={"CLI": "cli"})
    sibling = run.specs[-1].env
    assert "NAME" not in sibling and "CLI" not in sibling


def test_targetstage_names_the_stage_built(dirs):
    text = "FROM base AS first\nARG TARGETSTAGE\nRUN x\nFROM base AS final\nRUN y\n"
    _, _, run, _ = build(dirs, text)
    assert run.specs[0].env["TARGETSTAGE"] == "final" and "TARGETSTAGE" not in run.specs[1].env
    _, _, run, _ = build(dirs, text, targets=["first"])
    assert run.specs[0].env["TARGETSTAGE"] == "first"
    _, _, run, _ = build(dirs, "FROM base\nARG TARGETSTAGE\nRUN x\n")
    assert run.specs[0].env["TARGETSTAGE"] == "default"


def test_an_onbuild_trigger_copying_from_a_stage_keeps_that_stage(dirs):
    """BuildKit v0.16.0 (moby/buildkit#5357): a trigger's COPY --from=STAGE makes STAGE a dependency of the stage
    built FROM the trigger's parent; kiln's planner once dropped STAGE's files ("was not kept")."""
    text = ("FROM base AS src\nRUN make\nFROM base AS parent\nONBUILD COPY --from=src /built-by-0 /out\n"
            "FROM parent AS child\nRUN use\n")
    image, snap, run, _ = build(dirs, text, skip_unused_stages=True)
    assert ("save_tree", "0") in snap.calls and [s.argv[-1] for s in run.specs] == ["make", "use"]
    assert os.path.isfile(os.path.join(dirs[0], "out"))
