"""Systems under test: replicas that turn token-id prompts into token ids."""
