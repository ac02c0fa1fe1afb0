"""`nmt serve`: an HTTP translation service and an attention page over one Translator.

limits.py says what a request may ask; schema.py is the JSON the API reads and writes;
worker.py is the one thread that runs the model, batching concurrent requests; app.py puts them
behind FastAPI routes and runs uvicorn; page/index.html is the page served at ``/``.
"""
