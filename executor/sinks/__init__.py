"""Where a built image goes: a registry, a docker-load tarball, an OCI layout, and the digest files."""
from .digest_files import write_digest_files
from .layout import append_image as write_oci_layout
from .layout import read_image as read_oci_layout
from .remote import push
from .tarball import read_image as read_tarball
from .tarball import write_tarball

__all__ = ["push", "write_tarball", "write_oci_layout", "write_digest_files", "read_oci_layout", "read_tarball"]
