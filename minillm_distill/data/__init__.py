"""Training data: prompt/response records, tokenisation, batching order."""
