"""The emotional review database (paper §4.1.2, Appendix A.2): the reviews file and its filters (data), each
movie's knowledge (knowledge), and the stage run with Ray Data entity linking (build)."""
