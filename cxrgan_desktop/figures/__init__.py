"""The figures for papers (reader-study ROC and accuracy, TSTR AUROC and learning curve),
each drawn by one function onto a plain ``matplotlib.figure.Figure``.

No Qt and no pyplot: the command line writes PNG and PDF through matplotlib's Agg and PDF
canvases on a server without a display or Qt installed, and the GUI's results windows embed
the very same figures in a Qt canvas, so that a figure is drawn in one place only.
"""
