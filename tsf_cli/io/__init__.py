"""What tsf reads and writes besides videos and checkpoints: batch sources (``inputs``), record files
(``records``), embedding files (``embeddings``), atomic writes and locks (``atomic``)."""
