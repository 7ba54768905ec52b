"""Embedders: the :class:`~semcache.embedding.embedders.Embedder` protocol and its implementations
(public as ``semcache.SentenceTransformerEmbedder``, ``semcache.OpenAIEmbedder``, ...)."""
