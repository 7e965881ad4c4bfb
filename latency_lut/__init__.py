"""Device latency lookup tables (measuring backends, LUT files, prediction, validation).

The tables are keyed by :attr:`search_spaces.LayerSpec.key`, the same layer specs the models are built
from and the counters sum over.
"""
