"""Reports from the durable logs: performance, trade and sweep, as markdown or one HTML file."""
