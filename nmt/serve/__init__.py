"""`nmt serve`: an HTTP translation service and an attention page over one Translator.

limits.py says what a request may ask; schema.py is the JSON the API reads and writes;
worker.py is the one thread that runs the model, batching concurrent requests; texts.py splits
texts into sentences for it and puts their translations back; app.py puts them behind FastAPI
routes and runs uvicorn; libretranslate.py adds LibreTranslate's API; page/index.html is the
page served at ``/``.
"""
