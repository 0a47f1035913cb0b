"""The offline tree explorer (`cotgen view`): a static HTML site, and plots of tree statistics."""
