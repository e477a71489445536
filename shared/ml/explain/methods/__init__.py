"""Explanation methods as objects: one module per method, listed in shared/ml/explain/registry.py.

Each method says how much work it has, how to split it into spans, how to compute a span (a typed
`ExplanationPart`), and which limits it needs; `base.merge_parts` joins spans by what the part's
fields declare, never by guessing from shapes.
"""
