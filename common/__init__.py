"""Basics every stage may use: errors, the data set and its tokenizer, nothing that imports upward."""
