"""Train on synthetic, test on real: does synthetic data help a classifier?"""
