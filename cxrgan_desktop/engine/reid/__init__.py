"""Patient re-identification: the embedding network, its files, training and evaluation."""
