"""`apb2face serve`: an HTTP API (offline video jobs in a SQLite-backed worker pool), live sessions over a
WebSocket, and a plain HTML page at `/` that drives both. Build the app with `apb2face.serve.app.create_app`."""
