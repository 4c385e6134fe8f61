"""The model store: the known-model cards (the paper's generator, the bundled demo) and the
user's installed models, and installing new ones."""
