"""The emotion-aligned generator stage (paper §4.3): training examples from the reviews (data), the chat model +
LoRA and compiled decoding (model), the Train task and the stage run (train), offline metrics and the LLM scorer
(evaluate), knowledge prompt → reply (predictor)."""
