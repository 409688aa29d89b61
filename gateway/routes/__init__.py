"""HTTP routes: each converts a request, delegates, and converts the answer."""
