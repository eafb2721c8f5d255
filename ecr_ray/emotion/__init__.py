"""User emotions: the LLM annotation prompt + Table 8 mapping (labels), an OpenAI-compatible client (client),
and entity-emotion links (links)."""
