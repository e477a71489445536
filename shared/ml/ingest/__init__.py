"""From an upload to train/test arrays: `upload` converts a CSV, Parquet or Arrow upload to the
canonical Parquet file (`canonical`) with the checks of `columns`; `dataset` reads either form back and
splits it. Importing this package loads nothing: pyarrow comes with the modules that need it.
"""
