"""Built-in plugins, one module per capability area (registered through the same hooks as any plugin)."""
