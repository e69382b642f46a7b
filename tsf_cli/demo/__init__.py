"""The demo: synthetic motion clips (``synthetic``), the recipe that trains the bundled model on them (``recipe``),
``tsf demo``'s generate-and-classify run (``run``), and the bundled model itself in ``weights/`` (config.json,
model.safetensors, preprocessor_config.json: the ``demo`` preset)."""
