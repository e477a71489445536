"""The client's version, in the User-Agent of every request (a module of its own, below the transport)."""

__version__ = "0.1.0"
