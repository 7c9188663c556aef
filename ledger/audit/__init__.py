"""The audit log: canonical event bytes, the RFC 6962 Merkle tree, and C2SP signed checkpoints."""
