"""Images in and out. Inside the library an image is a float32 H x W array in [0, 1],
0 = black (the MONOCHROME2 sense)."""
