"""Inference: a path becomes uint8 views (``views``), a loaded model turns views into probabilities or embeddings
(``predictor``), and many videos become records (``runner``, decoding in crash-isolated processes from ``pool``)."""
