"""Code shared by the notebooks: each module has one job (see the README, section "Layout")."""

import os

# Before CUDA starts (importing torch does not start it): let the caching allocator grow segments
# instead of fragmenting memory, which turns many near-miss out-of-memory errors on a 16 GB T4
# into successful steps. A value the reader set is kept.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
