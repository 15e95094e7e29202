"""The HTTP side: app factory, middlewares, routes, handlers and wire types."""
