"""catneuron: building high-level features with large-scale unsupervised learning (Le et al., ICML 2012)."""
__version__ = "0.1.0"


def load(path, device: str = "cpu"):
    """A trained classifier (`catneuron classify train ...`), ready for `.predict(images)`."""
    from catneuron.classify.export import load as load_classifier
    return load_classifier(path, device)
