"""LLM emotion labelling of user turns (paper §4.1.1): the annotation prompt and its Table 8 mapping (prompts), an
OpenAI-compatible client (client), the turns and shards (data), the labelling actor (predictor), the run (label)
and the summary with agreement to the seed labels (evaluate)."""
