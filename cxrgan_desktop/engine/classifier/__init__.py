"""Multi-label pathology classifiers: the network, its files, training and the installed set."""
