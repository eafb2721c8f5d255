"""The emotion-aware recommender stage (paper §4.2): samples → tensors, turn encodings, entity emotions and the
co-occurrence matrix (data), the KG encoder + emotion fusion + prompt model (model), the Train task and the stage run
(train), metrics and the report beside the paper (evaluate), a dialogue in text → ranked items (predictor)."""
