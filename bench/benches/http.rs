//! Cost of the HTTP hot pieces: parsing a typical request head, parsing a
//! response head, editing and writing a request head for a node (as the
//! forwarding module and the codec do), and walking a chunked body.
//!
//! Run: `cargo bench -p shoal-microbench --bench http`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shoal::http::chunked::ChunkedFramer;
use shoal::http::request::{self, Limits, RequestHead};
use shoal::http::response::{self, ResponseHead};
use shoal::http::rewrite::{self, RequestFraming};

const REQUEST: &[u8] = b"GET /assets/app.min.js?v=42 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\nAccept: */*\r\nAccept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nReferer: https://www.example.com/\r\nConnection: keep-alive\r\nCookie: session=abcdef0123456789; theme=dark\r\nSec-Fetch-Dest: script\r\nSec-Fetch-Mode: no-cors\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 22 Nov 2026 06:00:00 GMT\r\nContent-Type: application/javascript\r\nContent-Length: 48213\r\nLast-Modified: Sat, 21 Nov 2026 12:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"6560-bc55\"\r\nCache-Control: max-age=31536000\r\nAccept-Ranges: bytes\r\n\r\n";
const LIMITS: Limits = Limits { max_head: 32 * 1024, max_headers: 100, max_uri: 8192 };

fn http(c: &mut Criterion) {
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(1));
    let mut head = RequestHead::default();
    g.bench_function("parse_request_head", |b| {
        b.iter(|| request::parse(black_box(REQUEST), &LIMITS, &mut head).unwrap());
    });
    let mut resp = ResponseHead::default();
    g.bench_function("parse_response_head", |b| {
        b.iter(|| response::parse(black_box(RESPONSE), 32 * 1024, false, &mut resp).unwrap());
    });
    let mut out = Vec::with_capacity(1024);
    // Parse, add X-Forwarded-For and X-Cluster-Client-Ip, write: subtract
    // parse_request_head for the edits and the write.
    g.bench_function("parse_edit_write_request_head", |b| {
        b.iter(|| {
            request::parse(black_box(REQUEST), &LIMITS, &mut head).unwrap();
            head.fields.append_to_list("X-Forwarded-For", |o| o.extend_from_slice(b"192.0.2.7")).unwrap();
            head.fields.set("X-Cluster-Client-Ip", b"192.0.2.7").unwrap();
            rewrite::write_request(&head, &RequestFraming::default(), &mut out);
        });
    });
    let mut body = Vec::new();
    for _ in 0..16 {
        body.extend_from_slice(b"1000\r\n");
        body.extend(std::iter::repeat_n(b'x', 4096));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("chunked_framer_64KiB", |b| {
        b.iter(|| {
            let mut f = ChunkedFramer::default();
            f.advance(black_box(&body), |_| {}).unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, http);
criterion_main!(benches);
