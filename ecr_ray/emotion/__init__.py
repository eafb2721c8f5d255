"""The user-emotion classifier stage (paper §4.1.1): seed labels and label rules (data), encoder + 9-way head with
focal loss (model), the Train task and the stage run (train), Recall@k and per-label scores (evaluate), inference
and Ray Data labelling of every user turn (predictor), entity-emotion links (links)."""
