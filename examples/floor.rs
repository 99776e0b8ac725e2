//! The benchmark's floor: a do-nothing UDP responder (receive, flip QR, send back).
//! What it costs per query is what loopback delivery costs; no DNS server can go below it.
//!
//! cargo run --release --example floor -- 127.0.0.1:15360

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:15360".into());
    let socket = std::net::UdpSocket::bind(&addr)?;
    eprintln!("floor responder on {addr}");
    let mut buf = [0u8; 4096];
    loop {
        let (n, src) = socket.recv_from(&mut buf)?;
        if n >= 12 {
            buf[2] |= 0x80; // QR: this is a response
            buf[3] = (buf[3] & 0xf0) | 0x80; // RA, RCODE 0
            let _ = socket.send_to(&buf[..n], src);
        }
    }
}
