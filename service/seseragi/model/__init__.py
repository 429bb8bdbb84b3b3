"""Getting a model ready to serve: the built-in model's install and one-time conversion, then loading."""
