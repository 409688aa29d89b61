"""Sample posters: a synthetic generator with ground truth, and the README sample image."""
