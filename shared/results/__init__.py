"""A job's result in the forms a client can ask for.

- `formats`: the result's JSON as Arrow IPC, Parquet or NPZ, holding exactly the JSON's numbers.
"""
