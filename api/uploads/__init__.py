"""The streaming upload path: how a submit's body is bounded, read and converted before any job exists.

- `http_protocol`: uvicorn's HTTP protocol with bounded request heads.
- `size_limit`: the ASGI middleware that refuses an oversized body while it streams in.
- `auth_first`: routes that check the token before they read the body.
- `stream`: the multipart body streamed to a spool file, never parsed whole in memory.
- `early`: checks a body's declared size and format can answer before it is read.
- `files`: the uploaded file turned into the canonical Arrow form the workers read.
- `conversion_slots`: how many conversions run at once.
"""
