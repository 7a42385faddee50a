#!/usr/bin/env python3
"""Write the hand-made seeds of the HTTP and chunked targets, and the TLS
seeds derived from the captures (run capture_tls.py first).

Usage: python3 fuzz/scripts/make_seeds.py fuzz/seeds
Each HTTP/chunked seed starts with the option byte that shoal::fuzzing
reads (see src/fuzzing.rs): 0x00 means shoal's default limits, split at 0.
"""
import os
import sys

out = sys.argv[1]


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def crlf(s):
    return s.replace("\n", "\r\n").encode()


# --- request_head: option byte = limits (bits 0-1), split (bits 2-7) ---
OK, TIGHT, WIDE_HEADERS, NONE = 0, 1, 2, 3
SPLIT_HALF = 32 << 2
requests = {
    "get_simple": (OK, crlf("GET / HTTP/1.1\nHost: example.com\n\n")),
    "get_http10": (OK, crlf("GET /index.html HTTP/1.0\n\n")),
    "get_http10_keepalive": (OK | SPLIT_HALF, crlf("GET / HTTP/1.0\nConnection: Keep-Alive\n\n")),
    "post_content_length": (OK, crlf("POST /submit?a=1&b=2 HTTP/1.1\nHost: h\nContent-Type: text/plain\nContent-Length: 11\n\n") + b"hello world"),
    "post_chunked_ext_trailers": (OK | SPLIT_HALF, crlf("POST /up HTTP/1.1\nHost: h\nTransfer-Encoding: gzip, chunked\n\n")
                                  + b"5;name=value;q=\"x y\"\r\nhello\r\nA\r\n0123456789\r\n0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"),
    "pipelined": (OK, crlf("GET /a HTTP/1.1\nHost: h\n\n")
                  + crlf("POST /b HTTP/1.1\nHost: h\nContent-Length: 3\n\n") + b"abc"
                  + crlf("PUT /c HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n") + b"3\r\nxyz\r\n0\r\n\r\n"
                  + crlf("DELETE /d HTTP/1.1\nHost: h\nConnection: close\n\n")
                  + crlf("GET /e HTTP/1.0\n\n")),
    "absolute_form_http": (OK, crlf("GET http://example.com:8080/path?q=1 HTTP/1.1\nHost: example.com:8080\n\n")),
    "absolute_form_https_upper": (OK, crlf("GET HTTPS://Example.COM/ HTTP/1.1\nHost: example.com\n\n")),
    "options_star": (OK, crlf("OPTIONS * HTTP/1.1\nHost: h\n\n")),
    "expect_continue": (OK, crlf("PUT /f HTTP/1.1\nHost: h\nExpect: 100-Continue\nContent-Length: 4\n\n") + b"data"),
    "upgrade_websocket": (OK, crlf("GET /ws HTTP/1.1\nHost: h\nConnection: keep-alive, Upgrade\nUpgrade: websocket\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n")),
    "connection_tokens": (OK, crlf("GET / HTTP/1.1\nHost: h\nConnection: close, X-A ,, x-b\t\nConnection: te\nX-A: 1\nTE: trailers\n\n")),
    "leading_empty_lines": (OK, crlf("\n\nGET / HTTP/1.1\nHost: h\n\n")),
    "bare_lf": (OK, b"GET / HTTP/1.1\nHost: h\nX: y\n\n"),
    "empty_and_obs_text_values": (OK, crlf("GET / HTTP/1.1\nHost: h\nX-Empty:\nX-Spaces:   \t\nX-Obs: caf\xe9\n\n").replace(b"\xc3\xa9", b"\xe9")),
    "many_headers": (WIDE_HEADERS, crlf("GET / HTTP/1.1\nHost: h\n" + "".join(f"X-H{i}: v{i}\n" for i in range(120)) + "\n")),
    "too_many_headers": (TIGHT, crlf("GET / HTTP/1.1\nHost: h\nA: 1\nB: 2\nC: 3\nD: 4\n\n")),
    "uri_too_long": (TIGHT, crlf("GET /" + "a" * 40 + " HTTP/1.1\nHost: h\n\n")),
    "head_too_large": (TIGHT, crlf("GET / HTTP/1.1\nHost: h\nX-Long: " + "v" * 200 + "\n\n")),
    "incomplete_line": (TIGHT, b"GET /" + b"a" * 200),
    "incomplete_headers": (OK | SPLIT_HALF, b"GET / HTTP/1.1\r\nHost: h\r\nX-Part"),
    "no_limits_long_target": (NONE, crlf("GET /" + "x" * 3000 + " HTTP/1.1\nHost: h\n\n")),
    "cl_and_te": (OK, crlf("POST / HTTP/1.1\nHost: h\nContent-Length: 5\nTransfer-Encoding: chunked\n\n")),
    "cl_conflict": (OK, crlf("POST / HTTP/1.1\nHost: h\nContent-Length: 5\nContent-Length: 6\n\n")),
    "cl_repeated_same": (OK, crlf("POST / HTTP/1.1\nHost: h\nContent-Length: 3\ncontent-length: 003\n\n") + b"abc"),
    "cl_list": (OK, crlf("POST / HTTP/1.1\nHost: h\nContent-Length: 5, 5\n\n")),
    "cl_plus": (OK, crlf("POST / HTTP/1.1\nHost: h\nContent-Length: +5\n\n")),
    "cl_huge": (OK, crlf("POST / HTTP/1.1\nHost: h\nContent-Length: 99999999999999999999\n\n")),
    "cl_max_u64_digits": (OK, crlf("POST / HTTP/1.1\nHost: h\nContent-Length: 9999999999999999999\n\n")),
    "te_not_last": (OK, crlf("POST / HTTP/1.1\nHost: h\nTransfer-Encoding: chunked, gzip\n\n")),
    "te_twice": (OK, crlf("POST / HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n")),
    "te_http10": (OK, crlf("POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n")),
    "te_identity": (OK, crlf("POST / HTTP/1.1\nHost: h\nTransfer-Encoding: identity\n\n")),
    "missing_host": (OK, crlf("GET / HTTP/1.1\n\n")),
    "two_hosts": (OK, crlf("GET / HTTP/1.1\nHost: a\nhost: b\n\n")),
    "space_before_colon": (OK, crlf("GET / HTTP/1.1\nHost : a\n\n")),
    "obs_fold": (OK, crlf("GET / HTTP/1.1\nHost: a\nX: b\n  folded\n\n")),
    "nul_in_value": (OK, b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n"),
    "http2_version": (OK, crlf("GET / HTTP/2.0\nHost: a\n\n")),
    "garbage_version": (OK, crlf("GET / HTXP/1.1\nHost: a\n\n")),
    "bad_method": (OK, crlf("G@T / HTTP/1.1\nHost: a\n\n")),
    "bad_target": (OK, crlf("GET nope HTTP/1.1\nHost: a\n\n")),
    "fragment_target": (OK, crlf("GET /a#frag HTTP/1.1\nHost: a\n\n")),
    "star_not_options": (OK, crlf("GET * HTTP/1.1\nHost: a\n\n")),
    "bad_expect": (OK, crlf("GET / HTTP/1.1\nHost: a\nExpect: 200-ok\n\n")),
    "connect": (OK, crlf("CONNECT a:443 HTTP/1.1\nHost: a:443\n\n")),
    "smuggle_lf_in_chunk": (OK, crlf("POST / HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n") + b"5\nhello\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n"),
}
for name, (opt, data) in requests.items():
    write("request_head", name, bytes([opt]) + data)

# --- response_head: option byte = HEAD (bit 0), max_head (bits 1-2), split (bits 3-7) ---
HEAD, SMALL = 1, 1 << 1
R_SPLIT_HALF = 16 << 3
responses = {
    "content_length": (0, crlf("HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\n\n") + b"hello"),
    "chunked_trailers": (R_SPLIT_HALF, crlf("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nTrailer: X-T\n\n")
                         + b"4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: done\r\n\r\n"),
    "until_close_http10": (0, crlf("HTTP/1.0 200 OK\nServer: x\n\n") + b"body until close"),
    "until_close_te_gzip": (0, crlf("HTTP/1.1 200 OK\nTransfer-Encoding: gzip\n\n") + b"\x1f\x8b"),
    "no_content_204": (0, crlf("HTTP/1.1 204 No Content\nContent-Length: 10\n\n")),
    "not_modified_304": (0, crlf("HTTP/1.1 304 Not Modified\nETag: \"x\"\nContent-Length: 100\n\n")),
    "continue_then_200": (0, crlf("HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\nContent-Length: 2\n\n") + b"ok"),
    "early_hints_then_200": (0, crlf("HTTP/1.1 103 Early Hints\nLink: </s.css>; rel=preload\n\n"
                                     "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n") + b"2\r\nok\r\n0\r\n\r\n"),
    "switching_protocols": (0, crlf("HTTP/1.1 101 Switching Protocols\nConnection: Upgrade\nUpgrade: websocket\n\n") + b"\x81\x02hi"),
    "head_response": (HEAD, crlf("HTTP/1.1 200 OK\nContent-Length: 1234\nTransfer-Encoding: chunked\n\n")),
    "keepalive_sequence": (0, crlf("HTTP/1.1 200 OK\nContent-Length: 1\n\n") + b"a"
                           + crlf("HTTP/1.1 404 Not Found\nContent-Length: 0\n\n")
                           + crlf("HTTP/1.1 500 Oops\nConnection: close\nTransfer-Encoding: chunked\n\n") + b"0\r\n\r\n"),
    "http10_keepalive": (0, crlf("HTTP/1.0 200 OK\nConnection: keep-alive\nContent-Length: 0\n\n")),
    "no_reason": (0, crlf("HTTP/1.1 200\nContent-Length: 0\n\n")),
    "empty_reason": (0, crlf("HTTP/1.1 404 \nContent-Length: 0\n\n")),
    "status_999": (0, crlf("HTTP/1.1 999 Weird\nContent-Length: 0\n\n")),
    "status_099": (0, crlf("HTTP/1.1 099 Low\n\n")),
    "cl_and_te": (0, crlf("HTTP/1.1 200 OK\nContent-Length: 3\nTransfer-Encoding: chunked\n\n")),
    "cl_conflict": (0, crlf("HTTP/1.1 200 OK\nContent-Length: 3\nContent-Length: 4\n\n")),
    "bad_version": (0, crlf("HTTX/1.1 200 OK\n\n")),
    "many_headers": (4 << 1, crlf("HTTP/1.1 200 OK\n" + "".join(f"X-H{i}: v{i}\n" for i in range(60)) + "Content-Length: 0\n\n")),
    "too_large_small_limit": (SMALL, crlf("HTTP/1.1 200 OK\nX-Long: " + "v" * 80 + "\n\n")),
    "bare_lf": (0, b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    "incomplete": (R_SPLIT_HALF, b"HTTP/1.1 200 OK\r\nContent-Len"),
}
for name, (opt, data) in responses.items():
    write("response_head", name, bytes([opt]) + data)

# --- chunked: option byte = piece sizes ---
chunked = {
    "simple": (0x00, b"5\r\nhello\r\n0\r\n\r\n"),
    "last_only": (0x40, b"0\r\n\r\n"),
    "extensions_trailers": (0x81, b"5;name=v\r\nhello\r\n6;a;b=\"q\"\r\n world\r\n0;end\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT"),
    "hex_cases": (0xc3, b"A\r\n0123456789\r\nf\r\n0123456789abcde\r\n0010\r\n0123456789abcdef\r\n0\r\n\r\n"),
    "big_chunk": (0xff, b"400\r\n" + bytes(range(256)) * 4 + b"\r\n0\r\n\r\n"),
    "max_size_incomplete": (0x10, b"ffffffffffffffff\r\nabc"),
    "overflow": (0x20, b"10000000000000000\r\n"),
    "negative": (0x00, b"-5\r\nhello\r\n0\r\n\r\n"),
    "space_after_size": (0x00, b"5 \r\nhello\r\n0\r\n\r\n"),
    "hex_prefix": (0x00, b"0x5\r\nhello\r\n0\r\n\r\n"),
    "bare_lf_size": (0x00, b"5\nhello\r\n0\r\n\r\n"),
    "bare_lf_trailer": (0x00, b"5\r\nhello\r\n0\r\n\n"),
    "missing_data_crlf": (0x00, b"5\r\nhelloXX0\r\n\r\n"),
    "ext_with_lf": (0x00, b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    "long_extension": (0x80, b"1;" + b"e" * 4100 + b"\r\na\r\n0\r\n\r\n"),
    "long_trailers": (0x80, b"0\r\n" + b"X-T: " + b"t" * 4100 + b"\r\n\r\n"),
    "next_request_after": (0x05, b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
}
for name, (opt, data) in chunked.items():
    write("chunked", name, bytes([opt]) + data)

# --- tls_hello: derived from the captures ---
tls = os.path.join(out, "tls_hello")


def records(msg, size):
    r = b""
    for i in range(0, len(msg), size):
        c = msg[i:i + size]
        r += bytes([22, 3, 1]) + len(c).to_bytes(2, "big") + c
    return r


ch = open(os.path.join(tls, "client_openssl_tls13_sni"), "rb").read()
msg = ch[5:]
write("tls_hello", "derived_client_hello_in_40_byte_records", records(msg, 40))
write("tls_hello", "derived_client_hello_in_1_byte_records", records(msg, 1))
write("tls_hello", "derived_client_hello_truncated", ch[:len(ch) // 2])
write("tls_hello", "derived_not_tls_http", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
write("tls_hello", "derived_zero_length_record", bytes([22, 3, 1, 0, 0]))
write("tls_hello", "derived_alert_record", bytes([21, 3, 3, 0, 2, 2, 40]))
write("tls_hello", "derived_hello_then_garbage", ch + b"\x00garbage")
