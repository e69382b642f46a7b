"""Video files to uint8 frames and frames to the model's views: decoding (``decode``), frame plans (``sampling``),
stream facts (``probe``), resizing, cropping and normalisation (``preprocess``)."""
