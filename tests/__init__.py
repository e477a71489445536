"""The test suite.

A test process that has run an OpenMP team (xgboost or scikit-learn predicting with every core) and then
forks a job's computation child (tests/inprocess's `run_job`) hangs that child in libgomp, which is not
fork-safe. Workers never do both (their pool process forks, the child computes), so the test processes
run OpenMP on one thread unless a test asks for more (`n_threads`). Set here, before anything loads
libgomp.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
