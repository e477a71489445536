"""Signed webhooks that tell a user's server when a job finished.

- `outbox`: the delivery rows a finishing job writes in its own transaction, claimed and settled here.
- `delivery`: each user's signing secrets, the Standard Webhooks signature and the delivery loop.
- `address`: which URLs may receive a webhook (no private or internal addresses).
- `pinned_post`: the HTTP POST to the address that was checked, never re-resolved.
"""
