"""Getting a model ready to serve: install and convert the built-in model once, then load."""
