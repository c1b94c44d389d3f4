"""SwaRD data: the chat JSONL format, its validator, converters, loading, and the synthesis pipeline."""
