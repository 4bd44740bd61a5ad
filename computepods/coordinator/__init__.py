"""The MajorDomo's plain parts: a build in progress and its bookkeeping."""
