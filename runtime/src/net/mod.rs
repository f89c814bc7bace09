//! Network I/O for coroutines (SCAFFOLD mod.rs, replaced at merge).

mod addr;
mod blocking;
mod socket;
mod sys;
mod tcp;
mod udp;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
