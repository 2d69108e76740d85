"""catneuron: building high-level features with large-scale unsupervised learning (Le et al., ICML 2012)."""
__version__ = "0.1.0"


def load(path, device: str = "cpu"):
    """A trained classifier (`catneuron classify train ...`), ready for `.predict(images)`."""
    from catneuron.classify.export import load as load_classifier
    return load_classifier(path, device)


def load_network(run, device: str = "cpu"):
    """A trained network (`catneuron train ...`): `.features(images, sublayer)`, `.unit(address)`."""
    from catneuron.network import load_network as load_trained
    return load_trained(run, device)
