"""A job's fitted model kept for later: `kept` (the model with everything it needs to treat new rows as
the job's test rows), `codec` (its bytes, verified by sha256 before they are unpickled), `export/` (the
formats a user can download it in)."""
