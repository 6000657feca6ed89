"""The analysts' page over the predictions store."""
