"""The inductive loop itself: the walk, repairs, decoder and the types they pass, without torch."""
