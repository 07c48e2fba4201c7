"""Growing a dataset as SPIDER was grown: a similarity index over the patches' centre-tile
embeddings, "more like this", candidates verified yes/no, and class prototypes.

``faiss_index`` and ``prototypes_math`` are pure numpy/faiss; the rest is Django. The web tier
queries the index (faiss, numpy); building it, proposing candidates and the few-shot figures
run as jobs on the shared life cycle (``jobs``), never in a request.
"""
