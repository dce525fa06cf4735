"""EarlyTom-style early temporal merging inside the vision tower (an encoder-level stage), and its presets."""
