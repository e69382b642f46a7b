"""Training and evaluation: labelled sets (``data``), the training loop (``loop``), accuracy on a labelled set
(``evaluate``, on the same inference runner as ``tsf classify``)."""
