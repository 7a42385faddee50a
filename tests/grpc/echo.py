#!/usr/bin/env python3
"""gRPC through shoal (tests/it/http2.rs): a grpcio server as the node and
a grpcio client, both on raw bytes (no generated code).

  echo.py server PORT     serve echo.Echo on 127.0.0.1:PORT (0: any), print
                          "listening PORT"
  echo.py client ADDR [CA NAME]
                          call it through ADDR (over TLS with CA for
                          server name NAME) and print a JSON report

Methods: Unary (echoes the message), Fail (INVALID_ARGUMENT "nope", sent
as a trailers-only response), Chat (bidirectional: each message echoed as
it comes; the client sends the next only after the previous answer, so
the request and the response streams are open at the same time), and
Count (server streaming: N messages of N bytes for a request of N).
"""
import hashlib
import json
import queue
import random
import sys
from concurrent import futures

import grpc

SERVICE = "echo.Echo"


def server(port):
    def unary(req, ctx):
        return req

    def fail(req, ctx):
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "nope")

    def chat(reqs, ctx):
        for r in reqs:
            yield r

    def count(req, ctx):
        n = int(req.decode())
        for i in range(n):
            yield bytes([65 + i % 26]) * n

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
        "Count": grpc.unary_stream_rpc_method_handler(count),
    }
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                    options=[("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)])
    s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    bound = s.add_insecure_port(f"127.0.0.1:{port}")
    s.start()
    print(f"listening {bound}", flush=True)
    s.wait_for_termination()


def client(addr, ca=None, name=None):
    rnd = random.Random(19)
    out = {"unary": [], "chat": None, "count": None, "fail": None}
    opts = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
    if ca:
        creds = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read())
        channel = grpc.secure_channel(addr, creds, options=opts + [("grpc.ssl_target_name_override", name)])
    else:
        channel = grpc.insecure_channel(addr, options=opts)
    with channel as ch:
        unary = ch.unary_unary(f"/{SERVICE}/Unary")
        for size in (0, 1, 1000, 100_000, 3_000_000):
            msg = rnd.randbytes(size)
            got = unary(msg, timeout=30)
            out["unary"].append({"size": size, "exact": got == msg})
        try:
            ch.unary_unary(f"/{SERVICE}/Fail")(b"x", timeout=30)
            out["fail"] = "no error"
        except grpc.RpcError as e:
            out["fail"] = {"code": e.code().name, "details": e.details()}
        # Ping-pong: message i+1 leaves only when answer i arrived.
        msgs = [rnd.randbytes(rnd.choice((10, 5000, 70_000))) for _ in range(30)]
        q = queue.Queue()
        q.put(msgs[0])

        def requests():
            for _ in range(len(msgs)):
                yield q.get(timeout=30)

        answers = []
        for i, a in enumerate(ch.stream_stream(f"/{SERVICE}/Chat")(requests(), timeout=60)):
            answers.append(a)
            if i + 1 < len(msgs):
                q.put(msgs[i + 1])
        out["chat"] = {"sent": len(msgs), "received": len(answers), "exact": answers == msgs,
                       "sha256": hashlib.sha256(b"".join(answers)).hexdigest()}
        parts = list(ch.unary_stream(f"/{SERVICE}/Count")(b"200", timeout=30))
        out["count"] = {"messages": len(parts), "exact": all(p == bytes([65 + i % 26]) * 200 for i, p in enumerate(parts))}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]))
    else:
        client(*sys.argv[2:])
