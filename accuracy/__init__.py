"""Accuracy: reading LoadGen's accuracy log and scoring it against the references."""
