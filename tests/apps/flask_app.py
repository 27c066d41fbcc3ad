"""A Flask application for the integration tests."""

from __future__ import annotations

from flask import Flask, Response, request

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from flask"


@app.post("/echo")
def echo():
    return Response(request.get_data(), mimetype="application/octet-stream")


@app.get("/stream")
def stream():
    return Response((f"line {i}\n" for i in range(5)), mimetype="text/plain")


@app.get("/error")
def error():
    raise RuntimeError("flask view failed on purpose")


@app.get("/query")
def query():
    return {"args": request.args.to_dict(), "path": request.path, "root": request.root_path}
