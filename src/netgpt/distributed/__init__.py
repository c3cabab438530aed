"""Scale-out of the episode runtime (optional extra ``netgpt[ray]``; Ray is imported only when a backend starts)."""
