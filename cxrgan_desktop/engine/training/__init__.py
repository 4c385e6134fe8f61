"""Progressive GAN training: data listing and caching, the training loop and its state."""
