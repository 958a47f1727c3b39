"""Built-in vlabench plugins."""
