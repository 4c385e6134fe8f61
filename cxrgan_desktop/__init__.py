"""cxrgan-desktop: Progressive Growing GANs of chest radiographs, after Segal et al. (2020).

The library (everything outside ``gui/``) imports without Qt and never prints: it returns
values, raises clear exceptions and reports progress through callbacks.
"""

__version__ = "0.1.0"
