"""The cpCtrl endpoint: a Falcon app served by gunicorn (see app.py, serve.py)."""
