"""llm providers."""
