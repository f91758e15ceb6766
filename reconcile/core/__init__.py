"""The ground floor: what the vendor side (`integrations`) and the PSA side (`psa`) stand on.

Outside HTTP (`http`) and its readable errors (`errors`), field readers for answers
(`fields`), credential encryption (`crypto`), set-wise writes (`bulk`), the abstract
connection (`connections`), the signals between apps (`signals`) and row digests for cache keys
(`fragments`). Nothing here imports an app.
"""
