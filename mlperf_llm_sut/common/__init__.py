"""Basics every stage may use, importing nothing above them: errors, the data set and its tokenizer,
and the embedded demo model and data."""
