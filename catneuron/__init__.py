"""catneuron: building high-level features with large-scale unsupervised learning (Le et al., ICML 2012)."""
__version__ = "0.1.0"
