"""The blob store: job bytes (uploads, results, fan-out parts) on a local directory or S3, via fsspec.

- `store`: `BlobStore` and `current_store()`, written atomically and read by key.
- `gc`: blobs deleted after the transaction that stopped referencing them commits, and the orphan sweep.
"""
