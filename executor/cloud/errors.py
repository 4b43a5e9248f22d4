"""The one error of the cloud package: a message a user can act on (what was asked, of whom, and why not)."""
from __future__ import annotations


class CloudError(Exception):
    """Credentials or an object could not be had; the message names the source and the reason, never a secret."""
