//! Built-in demo nodes ("responders"): each connection is greeted with the
//! configured line and then echoed. They let the embedded default
//! configuration balance across real nodes on a machine with nothing else
//! running. They run on shard 0 and stop accepting at shutdown.

use crate::runtime::shard::ShardView;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use std::rc::Rc;

const IDLE: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn serve(view: Rc<ShardView>, index: usize, listener: TcpListener) {
    let greeting = format!("{}\n", view.config.responders[index].greeting).into_bytes();
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = view.shard.shutdown.wait() => return,
        };
        if let Ok((stream, _)) = accepted {
            monoio::spawn(echo(stream, greeting.clone()));
        }
    }
}

async fn echo(mut s: TcpStream, greeting: Vec<u8>) {
    let (res, _) = s.write_all(greeting).await;
    if res.is_err() {
        return;
    }
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let (res, b) = match monoio::time::timeout(IDLE, s.read(buf)).await {
            Ok(x) => x,
            Err(_) => return,
        };
        match res {
            Ok(n) if n > 0 => {
                let (res, b) = s.write_all(b).await;
                if res.is_err() {
                    return;
                }
                buf = b;
            }
            _ => return,
        }
    }
}
