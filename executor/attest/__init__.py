"""Supply chain: the provenance and SBOM of a build as attestations (see docs/supply-chain.md)."""
