"""One AL run: its configuration, loop, resumable state, proxies, features and curves file."""
