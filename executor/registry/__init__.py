"""Registry client: references, credentials, token auth, retries, pull and push over requests.

Decisions where kaniko/the specs leave room (see also RegistryOptions):
  * Scheme: HTTPS first; plain HTTP only when allowed (--insecure for push, --insecure-pull for pull,
    --insecure-registry per registry) or for localhost/loopback/private addresses, as go-containerregistry.
  * Retries: every request is retried `transport_retries` (3) times on connection errors, 5xx and 429,
    backoff 1s doubling (Retry-After wins), capped at 30s. --push-retry (default 0, as kaniko) and
    --image-download-retry (default 0) re-run a whole destination push / image pull on top of that.
  * Tokens are cached per exact scope set until `expires_in` (60s when absent) minus a small margin; a 401
    re-authenticates once and retries the request.
  * A pulled layer is downloaded on first open (or with fetch_layers=True), verified for digest, size,
    compression against its media type and diff_id before the file appears.
  * Push: blobs in parallel (`jobs`, 3), each HEAD-skipped, mounted from the repository it was pulled
    from (same registry) or from the first destination pushed, else uploaded monolithically (or in
    `chunk_size` PATCHes); the manifest is PUT only after every blob was confirmed.
  * Credentials: the first config.json found in --docker-config dir, $DOCKER_CONFIG, /kaniko/.docker,
    ~/.docker; credHelpers, then credsStore, then auths; then $CI_REGISTRY* (GitLab CI).
"""
from .auth import ANONYMOUS, CredentialError, Credentials, resolve as resolve_credentials
from .client import Pulled, RegistryClient
from .errors import NotFoundError, RegistryError, UnauthorizedError, UnreachableError
from .options import RegistryOptions
from .reference import Reference, ReferenceError

__all__ = ["Reference", "ReferenceError", "RegistryOptions", "RegistryClient", "Pulled", "Credentials",
           "CredentialError", "ANONYMOUS", "resolve_credentials", "RegistryError", "NotFoundError",
           "UnauthorizedError", "UnreachableError"]
