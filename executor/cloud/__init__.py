"""Cloud credentials and object stores, spoken over `requests` without the vendors' SDKs.

* `aws`: the standard credential chain (environment, web identity -> STS, shared credentials file,
  container credentials incl. EKS Pod Identity, IMDSv2), SigV4 signing (`sigv4`), ECR authorization tokens
  and S3 objects.
* `google`: access tokens from GOOGLE_APPLICATION_CREDENTIALS (service-account keys, external accounts,
  authorized users), gcloud's application default credentials file, or the metadata server; GCS objects.
* `azure`: Azure AD tokens (client secret, workload identity federated token, managed identity), ACR's
  refresh-token exchange, Blob Storage objects (shared key or AAD).

Why no SDKs: google-auth now requires `cryptography` (a ~10 MB extension), botocore ships ~100 MB of service
models, azure-identity pulls msal and `cryptography`; each protocol here is a few HTTP requests, and the one
piece of cryptography that is not a hash (RS256 for service-account keys) is a modular exponentiation
(`rsa.py`). Tests check the signatures against independent implementations (moto/botocore verify SigV4 with
a known secret; openssl verifies RS256).
"""
from .errors import CloudError

__all__ = ["CloudError"]
