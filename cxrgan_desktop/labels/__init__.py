"""Pathology labels: the ChestX-ray14 label file and the label distribution the phantom and
the LCO archive draw from."""
