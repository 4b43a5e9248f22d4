"""Build contexts in object stores: `gs://bucket/path`, `s3://bucket/key`, Azure Blob URLs
(`https://<account>.blob.core.windows.net/<container>/<blob>` and the China, Germany and US Government clouds'
hosts, kaniko's AzureBlobStorageHostRegEx), and `--bucket`.

kaniko downloads the object to <kaniko dir>/context.tar.gz and unpacks it; kiln streams the answer straight
into the same checked extraction as a `tar://` context (`context.safe_extract_tar`): no entry may land outside
the context. A path that is empty means kaniko's default object name, `context.tar.gz`
(pkg/util/bucket/bucket_util.go GetNameAndFilepathFromURI). Credentials come from executor.cloud's chains.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from executor.cloud import CloudError   # aws, azure, google: imported when an object is fetched (start-up)

log = logging.getLogger(__name__)

#: kaniko's constants.ContextTar
DEFAULT_OBJECT = "context.tar.gz"
#: the --context default: --bucket replaces it
DEFAULT_CONTEXT = "/workspace/"


def is_bucket_context(spec: str) -> bool:
    if spec.startswith(("gs://", "s3://")):
        return True
    if not spec.startswith(("https://", "http://")):
        return False        # a local directory, tar:// or git: no Azure Blob URL, and azure's module stays unloaded
    from executor.cloud import azure

    return azure.is_blob_url(spec)


def context_source(context: str, bucket: str) -> str:
    """What to build from, given --context and --bucket (kaniko's resolveSourceContext): a bucket without a
    scheme is a GCS bucket; it replaces an empty or remote (`scheme://`) context, and, unlike kaniko where the
    default context hides it, the default /workspace/ too. A local --context that is not the default wins."""
    if not bucket:
        return context
    source = bucket if "://" in bucket else f"gs://{bucket}"
    if context and "://" not in context and context.rstrip("/") != DEFAULT_CONTEXT.rstrip("/"):
        log.warning("--bucket %s is ignored: --context names the local directory %s (kaniko's rule)", bucket, context)
        return context
    return source


def split(spec: str) -> tuple[str, str]:
    """gs://bucket/path -> (bucket, path or context.tar.gz)."""
    parts = urlsplit(spec)
    return parts.netloc, parts.path.lstrip("/") or DEFAULT_OBJECT


def open_object(spec: str):
    """The object's streaming answer (requests.Response, 200); CloudError with the reason otherwise."""
    from executor.cloud import aws, azure, google

    if spec.startswith("gs://"):
        bucket, name = split(spec)
        return google.gcs_object(bucket, name)
    if spec.startswith("s3://"):
        bucket, key = split(spec)
        return aws.s3_object(bucket, key)
    return azure.blob_object(spec)


def extract_bucket_context(spec: str, dest: str, extract) -> None:
    """Stream the object `spec` names through `extract(fileobj, dest, spec)` (the context's safe tar
    extraction). CloudError and tar errors become ContextError in the caller."""
    if spec.startswith(("gs://", "s3://")) and not split(spec)[0]:
        raise CloudError("the URL names no bucket (gs://BUCKET/PATH, s3://BUCKET/KEY)")
    resp = open_object(spec)
    try:
        resp.raw.decode_content = True      # a gzip Content-Encoding (GCS transcoding) is undone on the way
        extract(resp.raw, dest, spec)
    finally:
        resp.close()


__all__ = ["CloudError", "DEFAULT_OBJECT", "context_source", "extract_bucket_context", "is_bucket_context"]
