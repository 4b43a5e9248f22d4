"""Registry client: references, credentials, token auth, retries, pull and push over requests."""
from .auth import ANONYMOUS, CredentialError, Credentials, resolve as resolve_credentials
from .client import Pulled, RegistryClient
from .errors import NotFoundError, RegistryError, UnauthorizedError
from .options import RegistryOptions
from .reference import Reference, ReferenceError

__all__ = ["Reference", "ReferenceError", "RegistryOptions", "RegistryClient", "Pulled", "Credentials",
           "CredentialError", "ANONYMOUS", "resolve_credentials", "RegistryError", "NotFoundError",
           "UnauthorizedError"]
