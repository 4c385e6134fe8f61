"""Statistics over sets of images and predictions: AUROC (classifiers); FID and KID later."""
