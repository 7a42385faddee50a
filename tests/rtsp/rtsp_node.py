#!/usr/bin/python3
"""A real RTSP node for shoal's tests: GStreamer's gst-rtsp-server serving
one test stream at /stream (MJPEG over RTP, WIDTHxHEIGHT, so a client can
tell which node it played from), on 127.0.0.1:PORT (0: any free port).

Prints "ready PORT" once listening, then one line per request it serves:
"METHOD PATH CLIENT_IP:CLIENT_PORT", flushed, for the test to read.

Usage: rtsp_node.py PORT WIDTH HEIGHT
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port, width, height = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(str(port))
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( videotestsrc is-live=true ! video/x-raw,format=I420,width={width},height={height},framerate=10/1 "
    "! jpegenc ! rtpjpegpay name=pay0 pt=26 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/stream", factory)


def log_request(method):
    def handler(client, ctx):
        conn = client.get_connection()
        url = ctx.uri.abspath if ctx.uri is not None else "*"
        print(f"{method} {url} {conn.get_ip()}", flush=True)

    return handler


def on_client(_server, client):
    for signal, method in [
        ("options-request", "OPTIONS"),
        ("describe-request", "DESCRIBE"),
        ("setup-request", "SETUP"),
        ("play-request", "PLAY"),
        ("teardown-request", "TEARDOWN"),
    ]:
        client.connect(signal, log_request(method))


server.connect("client-connected", on_client)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print(f"ready {server.get_bound_port()}", flush=True)
GLib.MainLoop().run()
