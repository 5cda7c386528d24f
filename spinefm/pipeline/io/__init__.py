"""What a run writes per film: the label map and instances JSON (`format`), the overlay picture (`render`)."""
