"""Ray Tune sweeps of the paper's Appendix B: search spaces, objectives, result tables, plots and best-config
recipes (space), and the trials and the sweep run (sweep)."""
