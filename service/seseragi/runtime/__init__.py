"""A process's life: the backend, engine construction, warm-up, boot and drain."""
