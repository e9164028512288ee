"""Phase analysis of AL runs (segments of a proxy curve): a model family apart from PALM."""
