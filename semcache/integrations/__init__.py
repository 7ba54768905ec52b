"""semcache where users already are: optional integrations, one public submodule each.

- :mod:`semcache.integrations.langchain`: a LangChain ``BaseCache`` for ``set_llm_cache``
  (``semcache[langchain]``); hand a wrapped HTTP client to ``ChatOpenAI`` with
  :func:`semcache.openai.http_client`.
- :mod:`semcache.integrations.litellm`: semcache as LiteLLM's cache (``semcache[litellm]``).

Importing this package imports none of them.
"""
