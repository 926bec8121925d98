"""Posts and what is sent of them: the blog's feed, posts by hand, digests and their results, engagement."""
