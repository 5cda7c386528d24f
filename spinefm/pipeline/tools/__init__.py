"""Command-line tools on a predictions folder: decode recorded chains again, or classify them again."""
