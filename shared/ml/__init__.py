"""The ML core: data loading, model building, metrics and explanations.

Plain Python on NumPy arrays: no web, database, settings or queue imports. Limits and
seeds come in as arguments so every result can be reproduced and tested alone.
"""
