"""The audit log over HTTP: entries, proofs and keys. Hashes and entries are standard base64; an entry is
exactly the bytes that were hashed into its leaf (`ledger.audit.events` decodes them: binary layouts for
ledger rows, RFC 8785 JSON for everything else)."""

from pydantic import BaseModel, ConfigDict, Field

_HASH = "base64 of 32 bytes"


class AuditEntriesView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "start": 0,
                    "entries": ["eyJraW5kIjoibG9nX3NpZ25pbmdfa2V5IiwiLi4uIjoiLi4uIn0="],
                    "log_size": 1,
                    "next_start": None,
                }
            ]
        }
    )
    start: int = Field(description="Index of the first entry returned")
    entries: list[str] = Field(description="Entries start, start + 1, …, each base64 of its exact bytes")
    log_size: int = Field(
        description="Entries in the log now (the signed part ends at the latest checkpoint)"
    )
    next_start: int | None = Field(
        description="Where the next page starts; null when this one reaches the end"
    )


class InclusionProofView(BaseModel):
    """Entry `index` is leaf `index` of the tree of `tree_size` leaves: hash the leaf (SHA-256 of 0x00 ‖
    entry), fold in the proof (RFC 9162 §2.1.3.2) and compare with the checkpoint's root hash."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "index": 5,
                    "tree_size": 8,
                    "entry": "eyJraW5kIjoidm91Y2hlcl90cmFuc2l0aW9uIiwiLi4uIjoiLi4uIn0=",
                    "leaf_hash": "pQ1d3ZK8mH6m7mF0t5t6m0b6kKx2r6h0l3w1v4y7z8A=",
                    "proof": ["Xl0j…", "3Yt2…", "k9Qe…"],
                    "checkpoint": "amiyan.kz/social-wallet/audit\n8\nM2Vh…=\n\n— amiyan.kz+1a2b3c4d+AR…\n",
                }
            ]
        }
    )
    index: int
    tree_size: int
    entry: str = Field(description="base64 of the entry's exact bytes")
    leaf_hash: str = Field(description=_HASH)
    proof: list[str] = Field(description=f"Audit path, from the leaf's sibling up; each {_HASH}")
    checkpoint: str | None = Field(description="The signed checkpoint of this size, when there is one")


class ConsistencyProofView(BaseModel):
    """The tree of `first` leaves is a prefix of the tree of `second` leaves (RFC 9162 §2.1.4)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"first": 4, "second": 8, "proof": ["Xl0j…"], "checkpoint": None}]}
    )
    first: int
    second: int
    proof: list[str] = Field(description=f"Each {_HASH}; empty when the sizes are equal")
    checkpoint: str | None = Field(description="The signed checkpoint of size `second`, when there is one")


class AuditKeysView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "origin": "amiyan.kz/social-wallet/audit",
                    "verifier_keys": ["amiyan.kz+1a2b3c4d+AR7c0k7vO1i0ZB6hE2oYpQ3m5Xx8vS1dKcU0t9nWq2Lz"],
                }
            ]
        }
    )
    origin: str = Field(description="The first line of every checkpoint")
    verifier_keys: list[str] = Field(
        description="C2SP verifier keys (name+keyhash+base64) over the log's life, oldest first. Pin one "
        "you obtained out of band (`amiyan audit key`); the log introduces later keys itself."
    )
