"""Federation: pods that find each other and share builds (docs/architecture.md §6).

Plain code, no charts: who the pods are (their hellos and pinned keys), the
discovery cache file, tool fingerprints, a chef pod's workspace, placement
by cost, and bringing a remote step's outputs home.  The charts that drive
them live in :mod:`computepods.charts`, beside the others.
"""
